"""Publishing one dataset folder: go-etdb file classification, record shape, and the publish path
(blocks durable before the record, record verifiable, content retrievable, multipart)."""

from pathlib import Path

import pytest

from etdb.content import exporter
from etdb.content.blockstore import FSBlockstore
from etdb.content.unixfs import add_path
from etdb.ledger.local import LocalLedger
from etdb.publish import dataset
from etdb.publish.dataset import (
    DatasetError,
    build_artifact,
    classify,
    describe_files,
    publish_dataset,
)
from etdb.record import MultipartAssembler, PrivateKey, decode, parse_part, verify_publish

SID = "ab2014-01-14-5"
META = {
    "title": "Sulfolobus solfataricus P2 (test)",
    "date": "2014-01-14",
    "NCBItaxID": 2287,
    "speciesName": "Sulfolobus solfataricus",
    "strain": "P2",
    "scopeName": "Caltech Polara",
    "tiltSingleDual": 1,
    "defocus": -10,
    "dosage": 180,
    "tiltConstant": 1,
    "tiltMin": -55,
    "tiltMax": 55,
    "tiltStep": 1,
    "magnification": 22500,
    "microscopist": "Ada Voxelstein",
    "institution": "Institute of Imaginary Microbiology",
    "lab": "Phantom Lab",
    "sid": SID,
    "tiltSeriesNotes": "synthetic test data",
    "swAcquisition": "UCSFTomo",
    "swReconstruction": "Raptor",
}


@pytest.mark.parametrize(
    ("fname", "expected"),
    [
        ("rawdata/stiv_0004.mrc", ("tomogram", "tiltSeries", None)),
        ("rawdata/stiv_0004.st", ("tomogram", "tiltSeries", None)),
        ("rawdata/stiv_0004.rawtlt", ("tomogram", "other", None)),
        ("rawdata/stiv_0004.mdoc", ("tomogram", "other", None)),
        ("3dimage_37677/stiv_full.rec", ("tomogram", "reconstruction", None)),
        ("3dimage_1/stiv_bin4.mrc", ("tomogram", "reconstruction", None)),
        ("3dimage_1/stiv.tlt", ("tomogram", "other", None)),
        (f"keymov_{SID}.mp4", ("tomogram", "keymov", "video/mp4")),
        (f"keymov_{SID}.flv", ("tomogram", "keymov", "video/x-flv")),
        (f"keyimg_{SID}.jpg", ("tomogram", "keyimg", "image/jpeg")),
        (f"keyimg_{SID}_s.jpg", ("image", "thumbnail", "image/jpeg")),
        ("AutoCaps/rr2014-01-14-5_slicer3727.jpg", ("tomogram", "snapshot", "image/jpeg")),
        ("file_12/overview.png", ("tomogram", "snapshot", "image/png")),
        ("file_13/movie.mp4", ("tomogram", "preview", "video/mp4")),
        ("README.txt", ("tomogram", "other", None)),
        ("notes/keyimg_x.jpg", ("tomogram", "other", "image/jpeg")),  # only at the top level
        ("rawdata.mrc", ("tomogram", "other", None)),
    ],
)
def test_classify_follows_go_etdb(fname, expected):
    assert classify(fname, SID) == expected


def test_a_sid_ending_in_s_keeps_its_key_image():
    assert classify("keyimg_ab_s.jpg", "ab_s")[1] == "keyimg"
    assert classify("keyimg_ab_s_s.jpg", "ab_s")[1] == "thumbnail"


def make_folder(root: Path) -> Path:
    folder = root / SID
    for rel, size in {
        "rawdata/ts.mrc": 3000,
        "rawdata/ts.rawtlt": 20,
        "3dimage_9/ts_full.rec": 5000,
        f"keyimg_{SID}.jpg": 700,
        f"keyimg_{SID}_s.jpg": 90,
        f"keymov_{SID}.mp4": 400,
        "AutoCaps/shot1.jpg": 60,
    }.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    return folder


def test_describe_files_lists_what_the_importer_adds(tmp_path):
    folder = make_folder(tmp_path)
    (folder / ".DS_Store").write_bytes(b"hidden")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "x.mrc").write_bytes(b"hidden")
    (folder / "link.mrc").symlink_to(folder / "rawdata" / "ts.mrc")
    files = describe_files(folder, SID, acquisition_software="SerialEM",
                           processing_software="IMOD")  # fmt: skip
    assert [f["fname"] for f in files] == [
        "rawdata/ts.mrc",
        "3dimage_9/ts_full.rec",
        f"keymov_{SID}.mp4",
        f"keyimg_{SID}.jpg",
        "AutoCaps/shot1.jpg",
        f"keyimg_{SID}_s.jpg",
        "rawdata/ts.rawtlt",
    ]
    first = files[0]
    assert first == {
        "software": "SerialEM",
        "dname": "ts.mrc",
        "fname": "rawdata/ts.mrc",
        "fsize": 3000,
        "type": "tomogram",
        "subtype": "tiltSeries",
    }
    assert files[1]["software"] == "IMOD"
    assert all("software" not in f for f in files[2:])
    assert files[2]["cType"] == "video/mp4"
    # go-etdb dropped acquisition software that named several programs.
    assert "software" not in describe_files(folder, SID, acquisition_software="A, B")[0]
    with pytest.raises(DatasetError, match="not a folder"):
        describe_files(folder / "nope", SID)


def test_build_artifact_has_go_etdb_shape(tmp_path):
    folder = make_folder(tmp_path)
    files = describe_files(folder, SID)
    meta = {**META, "fileNotes": {"AutoCaps/shot1.jpg": "S-layer"}, "tags": ["jensen.lab"]}
    art = build_artifact(meta, "bafkqaaa", files)
    wire = art.to_wire()
    assert list(wire) == ["type", "subtype", "info", "details", "storage"]
    assert (wire["type"], wire["subtype"]) == ("research", "tomogram")
    assert wire["info"]["tags"] == "etdb,tomogram,electron.tomography,jensen.lab"
    assert wire["info"]["title"] == META["title"]
    d = wire["details"]
    assert d["date"] == 1389657600 and d["NCBItaxID"] == 2287 and d["tiltSingleDual"] == 1
    assert d["artNotes"] == "Tilt series notes: synthetic test data\n"
    assert "swAcquisition" not in d  # stored per file, as go-etdb did
    assert art.software_acquisition == "UCSFTomo"
    assert art.software_reconstruction == "Raptor"
    assert art.files_of("snapshot")[0].fNotes == "S-layer"
    assert wire["storage"]["network"] == "ipfs" and wire["storage"]["location"] == "bafkqaaa"
    assert art.missing_fields(draft=True) == []
    untitled = build_artifact({**META, "title": ""}, "bafkqaaa", files)
    assert untitled.info.title == "Sulfolobus solfataricus"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"speciesNmae": "x"}, "unknown metadata keys: speciesNmae"),
        ({"date": None}, "acquisition date"),
        ({"date": "last tuesday"}, "ISO date"),
        ({"sid": ""}, "sid"),
        ({"tiltSingleDual": 3}, "tiltSingleDual"),
        ({"speciesName": ""}, "details.speciesName"),
        ({"NCBItaxID": "2287"}, "NCBItaxID"),
        ({"fileNotes": {"nope.jpg": "x"}}, "not in the dataset: nope.jpg"),
    ],
)
def test_build_artifact_refuses_bad_metadata(change, message):
    with pytest.raises(DatasetError, match=message):
        build_artifact({**META, **change}, "bafkqaaa", [])


def test_build_artifact_refuses_a_location_that_is_not_a_cid():
    with pytest.raises(DatasetError, match="not a CID"):
        build_artifact(META, "not-a-cid", [])


class Recorder:
    """Wraps the blockstore and ledger to record the order of sync and publish."""

    def __init__(self, target, events, name):
        self._target, self._events, self._name = target, events, name

    def __getattr__(self, attr):
        value = getattr(self._target, attr)
        if attr in ("sync", "publish"):

            def wrapped(*args, **kw):
                self._events.append(f"{self._name}.{attr}")
                return value(*args, **kw)

            return wrapped
        return value


@pytest.fixture
def env(tmp_path):
    ledger = LocalLedger(tmp_path / "ledger.sqlite3")
    store = FSBlockstore(tmp_path / "blocks")
    yield ledger, store, PrivateKey.generate()
    ledger.close()
    store.close()


def test_publish_dataset_syncs_then_publishes_a_verifiable_record(tmp_path, env):
    ledger, store, key = env
    folder = make_folder(tmp_path)
    events: list[str] = []
    result = publish_dataset(
        folder,
        META,
        key=key,
        ledger=Recorder(ledger, events, "ledger"),
        blockstore=Recorder(store, events, "store"),
        profile="unixfs-v0-2015",
        timestamp=1528156632,
    )
    assert events == ["store.sync", "ledger.publish"]  # durable before anything points at it
    assert result.cid == add_path(folder, "unixfs-v0-2015").cid
    assert str(result.cid).startswith("Qm")  # the profile go-etdb's records use
    assert len(result.txids) == 1
    entry = ledger.block(0).entries[0]
    assert entry.txid == result.txids[0] and entry.payload == result.flo_data
    artifact = decode(entry.payload).artifact
    check = verify_publish(artifact)
    assert check.valid and check.address == key.address
    assert artifact.timestamp == 1528156632 and artifact.location == str(result.cid)
    # Every file the record names is in the blockstore under <location>/<fname>, same size.
    for f in artifact.files:
        assert exporter.stat(store, f"{artifact.location}/{f.fname}").size == f.fsize


def test_publish_dataset_goes_multipart_on_a_small_ledger(tmp_path, env):
    _, store, key = env
    folder = make_folder(tmp_path)
    with LocalLedger(tmp_path / "flo.sqlite3", max_payload=1040) as flo:
        result = publish_dataset(
            folder, META, key=key, ledger=flo, blockstore=store, profile="kubo-v1"
        )
        assert len(result.txids) > 1
        assembler = MultipartAssembler()
        done = None
        for height in range(flo.tip().height + 1):
            for entry in flo.block(height).entries:
                done = assembler.add(parse_part(entry.payload), entry.txid) or done
        assert done is not None and done.data == result.flo_data


def test_a_folder_that_changes_while_added_is_not_published(tmp_path, env, monkeypatch):
    ledger, store, key = env
    folder = make_folder(tmp_path)
    real = dataset.describe_files

    def stale(folder, sid, **kw):
        files = real(folder, sid, **kw)
        files[0]["fsize"] -= 1  # as if the file grew after it was listed
        return files

    monkeypatch.setattr(dataset, "describe_files", stale)
    with pytest.raises(DatasetError, match="changed while it was being added"):
        publish_dataset(folder, META, key=key, ledger=ledger, blockstore=store, profile="kubo-v1")
    assert ledger.tip().height == -1


def test_bad_metadata_publishes_nothing(tmp_path, env):
    ledger, store, key = env
    folder = make_folder(tmp_path)
    with pytest.raises(DatasetError):
        publish_dataset(
            folder, {**META, "sid": ""}, key=key, ledger=ledger, blockstore=store,
            profile="kubo-v1",
        )  # fmt: skip
    assert ledger.tip().height == -1
