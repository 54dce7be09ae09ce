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


def test_describe_files_takes_the_sources_files_and_rules(tmp_path):
    from etdb.publish.source import ClassifyRule, SourceFile

    folder = make_folder(tmp_path)
    (folder / "extra").mkdir()
    (folder / "extra" / "overview.tif").write_bytes(b"t" * 33)
    (folder / "extra" / "subvol_1.mrc").write_bytes(b"s" * 44)
    media = tmp_path / "media"
    media.mkdir()
    (media / "generated.jpg").write_bytes(b"j" * 55)
    source_files = (
        SourceFile(
            "rawdata/ts.mrc", notes="binned 2", display_name="TS_01.mrc", software="SerialEM"
        ),
        SourceFile("AutoCaps/shot1.jpg", subtype="preview"),  # the source overrides the layout
        SourceFile("extra/overview.tif", subtype="thumbnail"),
    )
    rules = (
        ClassifyRule("extra/*.tif", "snapshot"),  # the source file's own subtype wins
        ClassifyRule("extra/subvol_*", "subvolume"),
        ClassifyRule("*.mrc", "other"),  # later rule: subvol_1.mrc matched already
    )
    files = describe_files(folder, SID, files=source_files, rules=rules,
                           overlay={"keyimg_gen.jpg": media / "generated.jpg"})  # fmt: skip
    by_name = {f["fname"]: f for f in files}
    # Every regular file is listed, the overlay too; the rules are tried on every one of them.
    assert set(by_name) == {
        "rawdata/ts.mrc", "rawdata/ts.rawtlt", "3dimage_9/ts_full.rec", f"keyimg_{SID}.jpg",
        f"keyimg_{SID}_s.jpg", f"keymov_{SID}.mp4", "AutoCaps/shot1.jpg",
        "extra/overview.tif", "extra/subvol_1.mrc", "keyimg_gen.jpg",
    }  # fmt: skip
    ts = by_name["rawdata/ts.mrc"]
    assert (ts["dname"], ts["fNotes"], ts["software"]) == ("TS_01.mrc", "binned 2", "SerialEM")
    assert ts["subtype"] == "other"  # no subtype of its own: the "*.mrc" rule applies
    assert by_name["AutoCaps/shot1.jpg"]["subtype"] == "preview"
    assert by_name["AutoCaps/shot1.jpg"]["cType"] == "image/jpeg"
    assert by_name["extra/overview.tif"]["type"] == "image"  # thumbnails are images
    assert by_name["extra/subvol_1.mrc"]["subtype"] == "subvolume"
    assert by_name["3dimage_9/ts_full.rec"]["subtype"] == "reconstruction"  # no rule: layout
    assert by_name["keyimg_gen.jpg"]["fsize"] == 55
    assert by_name["keyimg_gen.jpg"]["subtype"] == "keyimg"
    order = [f["subtype"] for f in files]
    assert order.index("subvolume") < order.index("preview") < order.index("thumbnail")


def test_describe_files_refuses_what_the_source_and_the_disk_disagree_on(tmp_path):
    from etdb.publish.source import ClassifyRule, SourceFile

    folder = make_folder(tmp_path)
    with pytest.raises(DatasetError, match=r"not in the folder: rawdata/gone\.mrc"):
        describe_files(folder, SID, files=(SourceFile("rawdata/gone.mrc"),))
    with pytest.raises(DatasetError, match="unknown file subtype 'tilt'"):
        describe_files(folder, SID, rules=(ClassifyRule("rawdata/*", "tilt"),))
    with pytest.raises(DatasetError, match="would replace"):
        describe_files(folder, SID, overlay={f"keyimg_{SID}.jpg": folder / "rawdata/ts.mrc"})


def test_publish_dataset_with_an_overlay_lists_and_adds_it(tmp_path, env):
    ledger, store, key = env
    folder = make_folder(tmp_path)
    (folder / f"keymov_{SID}.mp4").unlink()
    movie = tmp_path / "media" / f"keymov_{SID}.mp4"
    movie.parent.mkdir()
    movie.write_bytes(b"m" * 999)
    result = publish_dataset(folder, META, key=key, ledger=ledger, blockstore=store,
                             profile="kubo-v1", overlay={movie.name: movie})  # fmt: skip
    keymov = result.artifact.files_of("keymov")[0]
    assert keymov.fsize == 999
    assert exporter.stat(store, f"{result.cid}/{movie.name}").size == 999
    assert not (folder / movie.name).exists()


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (None, "etdb,tomogram,electron.tomography"),
        ("jensen.lab", "etdb,tomogram,electron.tomography,jensen.lab"),
        # go-etdb's exact string: every default is named, so the source's order stands.
        (
            "etdb,jensen.lab,tomogram,electron.tomography",
            "etdb,jensen.lab,tomogram,electron.tomography",
        ),
        (
            ["tomogram", " etdb", "x", "electron.tomography", "x"],
            "tomogram,etdb,x,electron.tomography",
        ),
    ],
)
def test_tags_keep_a_source_order_that_names_every_default(tmp_path, tags, expected):
    meta = {**META, "tags": tags} if tags is not None else META
    art = build_artifact(meta, "bafkqaaa", describe_files(make_folder(tmp_path), SID))
    assert art.to_wire()["info"]["tags"] == expected
