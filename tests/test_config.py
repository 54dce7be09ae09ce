"""Settings: one data folder, config.toml, ETDB_* overrides."""

import re
import subprocess
from pathlib import Path

import pytest

from etdb.config import (
    OTHER_ENV_PREFIXES,
    OTHER_ENV_VARS,
    SETTING_NAMES,
    ConfigError,
    Settings,
    data_home,
    load_settings,
)
from tests.conftest import REPO_ROOT


def test_home_from_env(tmp_path):
    assert data_home({"ETDB_HOME": str(tmp_path)}) == tmp_path


def test_home_defaults_to_platform_folder():
    home = data_home({})
    assert home.name == "etdb"
    assert home.is_absolute()


def test_defaults_relative_to_home(tmp_path):
    s = load_settings({"ETDB_HOME": str(tmp_path)})
    assert s.home == tmp_path
    assert s.cid_profile == "kubo-v1"
    assert s.blockstore_path == tmp_path / "blocks"
    assert s.keys_path == tmp_path / "keys"


def test_config_file_then_env_precedence(tmp_path):
    (tmp_path / "config.toml").write_text(
        'cid_profile = "unixfs-v0-2015"\nblockstore = "/srv/blocks"\n'
        'gateway_streams = 3\n[publish]\nkey = "lab"\n'
    )
    s = load_settings({"ETDB_HOME": str(tmp_path)})
    assert s.cid_profile == "unixfs-v0-2015"
    assert s.blockstore_path == Path("/srv/blocks")
    assert s.extra == {"gateway_streams": "3"}  # read by name by the gateway
    assert s.publish_key == "lab"  # a [publish] table's key is publish_key
    s = load_settings({"ETDB_HOME": str(tmp_path), "ETDB_CID_PROFILE": "kubo-v1"})
    assert s.cid_profile == "kubo-v1"


def test_bad_config_file_is_a_clear_error(tmp_path):
    (tmp_path / "config.toml").write_text("cid_profile = \n")
    with pytest.raises(ConfigError, match=r"config\.toml: not valid TOML"):
        load_settings({"ETDB_HOME": str(tmp_path)})


def test_publish_settings_defaults(tmp_path):
    s = load_settings({"ETDB_HOME": str(tmp_path)})
    assert s.publish_source == "" and s.publish_key == ""
    assert s.publish_journal_path == tmp_path / "publish" / "journal.sqlite3"
    assert s.publish_media_path == tmp_path / "publish" / "media"


def test_publish_settings_from_file_and_env(tmp_path):
    (tmp_path / "config.toml").write_text(
        'publish_source = "caltech"\npublish_key = "lab"\npublish_media = "/srv/media"\n'
    )
    s = load_settings({"ETDB_HOME": str(tmp_path)})
    assert (s.publish_source, s.publish_key) == ("caltech", "lab")
    assert s.publish_media_path == Path("/srv/media")
    assert "publish_source" not in s.extra
    s = load_settings(
        {
            "ETDB_HOME": str(tmp_path),
            "ETDB_PUBLISH_SOURCE": "/data/lab",
            "ETDB_PUBLISH_KEY": "other",
            "ETDB_PUBLISH_JOURNAL": "j.sqlite3",
        }
    )
    assert (s.publish_source, s.publish_key) == ("/data/lab", "other")
    assert s.publish_journal_path == tmp_path / "j.sqlite3"


def test_unknown_key_in_config_file_names_the_closest_setting(tmp_path):
    (tmp_path / "config.toml").write_text('ledgr = "local://"\n')
    with pytest.raises(ConfigError, match=r"unknown setting 'ledgr' \(did you mean 'ledger'\?\)"):
        load_settings({"ETDB_HOME": str(tmp_path)})


def test_unknown_table_key_in_config_file(tmp_path):
    (tmp_path / "config.toml").write_text('[ledger]\nurl = "local:///x"\n')
    with pytest.raises(ConfigError, match=r"unknown setting 'ledger_url'"):
        load_settings({"ETDB_HOME": str(tmp_path)})


def test_unknown_env_var_names_the_closest_setting(tmp_path):
    env = {"ETDB_HOME": str(tmp_path), "ETDB_LEDGR": "local://"}
    with pytest.raises(ConfigError, match=r"ETDB_LEDGR: unknown setting 'ledgr' \(did you mean"):
        load_settings(env)
    with pytest.raises(ConfigError, match=r"unknown setting 'zzzzqqq'$"):
        load_settings({"ETDB_HOME": str(tmp_path), "ETDB_ZZZZQQQ": "1"})


def test_env_vars_that_are_not_settings_stay_allowed(tmp_path):
    env = {"ETDB_HOME": str(tmp_path), "ETDB_TEST_POSTGRES": "x"}
    env |= {name: "x" for name in OTHER_ENV_VARS if name != "ETDB_HOME"}
    assert load_settings(env).extra == {}


def test_empty_etdb_home_is_an_error():
    for value in ("", "  "):
        with pytest.raises(ConfigError, match="ETDB_HOME is set but empty"):
            data_home({"ETDB_HOME": value})
        with pytest.raises(ConfigError, match="ETDB_HOME is set but empty"):
            load_settings({"ETDB_HOME": value})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("port", "http", r"port='http' is not a whole number from 0 to 65535"),
        ("port", "70000", r"port='70000' is not"),
        ("multipart_expiry", "-1", r"multipart_expiry='-1' is not a number of seconds"),
        ("multipart_expiry", "1e99", r"multipart_expiry='1e99' is not a number of seconds"),
        ("publishers", "FxYz, *", r"publishers: 'FxYz' is not a FLO address"),
        ("portal_publishers", "nobody", r"portal_publishers: 'nobody' is not a FLO address"),
        ("peers", "http://a:1,ftp://b", r"setting peers: peer 'ftp://b' is not an http"),
        ("peers", "http://a:99999", r"setting peers: peer 'http://a:99999' is not an http"),
        ("peer_cache_size", "10 parsecs", r"peer_cache_size='10 parsecs' is not a size"),
        ("peer_cache_size", "-1GiB", r"peer_cache_size='-1GiB' is not a size"),
    ],
)
def test_bad_values_are_errors(tmp_path, name, value, message):
    with pytest.raises(ConfigError, match=message):
        load_settings({"ETDB_HOME": str(tmp_path), f"ETDB_{name.upper()}": value})
    with pytest.raises(ConfigError, match=message):
        Settings(home=tmp_path, **{name: value})


def test_every_etdb_variable_in_the_repository_is_a_setting_or_listed():
    """The one list of non-setting ETDB_* variables cannot fall behind the code using them."""
    files = subprocess.run(
        ["git", "ls-files", "src", "tests", "bench", "docs", ".ci", "Makefile"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    names: set[str] = set()
    typos_on_purpose = {
        "tests/test_config.py",
        "tests/hostile/test_operability.py",
        "docs/configuration.md",
    }
    for name in set(files) - typos_on_purpose:
        path = REPO_ROOT / name
        if path.is_file() and path.suffix not in (".png", ".jpg", ".sqlite3", ".gz", ".car"):
            names |= set(
                re.findall(r"\bETDB_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="ignore"))
            )
    settings = {f"ETDB_{n.upper()}" for n in SETTING_NAMES}
    stray = {
        n
        for n in names - settings - OTHER_ENV_VARS
        if not n.startswith(OTHER_ENV_PREFIXES) and n != "ETDB_REACT_LIST"  # a test constant
    }
    assert not stray, f"add to config.OTHER_ENV_VARS or make a setting: {sorted(stray)}"


def test_peer_settings(tmp_path):
    s = Settings(home=tmp_path, peers=" http://a:1/x , https://b ,http://a:1/x")
    assert s.peer_urls == ("http://a:1/x", "https://b")  # in order, once each
    assert s.peer_cache_path == tmp_path / "peer-cache"
    assert s.peer_cache_bytes == 10 * 2**30
    sizes = {"0": 0, "512": 512, "500MB": 500 * 10**6, "2 gib": 2 * 2**30, "1TiB": 2**40}
    for text, size in sizes.items():
        assert Settings(home=tmp_path, peer_cache_size=text).peer_cache_bytes == size
    assert s.with_peers(["http://c"]).peer_urls == ("http://c",)
    with pytest.raises(ConfigError, match="cannot hold a comma"):
        s.with_peers(["http://c/a,b"])
    with pytest.raises(ConfigError, match="is not an http"):
        s.with_peers(["c.example"])


def test_the_peer_cache_never_overlaps_the_blockstore(tmp_path):
    # The cache evicts; the blockstore's blocks are the lab's data. Checked where it is used.
    for cache in ("blocks", "blocks/cache", ".", str(tmp_path)):
        with pytest.raises(ConfigError, match="overlaps the blockstore"):
            Settings(home=tmp_path, peers="http://a", peer_cache=cache)
    Settings(home=tmp_path, peer_cache="blocks")  # no peers: the cache is never used
    Settings(home=tmp_path, peers="http://a", peer_cache="blocks", peer_cache_size="0")
