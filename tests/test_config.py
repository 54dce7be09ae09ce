"""Settings: one data folder, config.toml, ETDB_* overrides."""

from pathlib import Path

import pytest

from etdb.config import ConfigError, data_home, load_settings


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
        'future_setting = 3\n[ledger]\nurl = "local:///x"\n'
    )
    s = load_settings({"ETDB_HOME": str(tmp_path)})
    assert s.cid_profile == "unixfs-v0-2015"
    assert s.blockstore_path == Path("/srv/blocks")
    assert s.extra["future_setting"] == "3"
    assert s.extra["ledger_url"] == "local:///x"
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
