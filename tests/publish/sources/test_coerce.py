"""Values as lab databases and catalogs hold them -> record metadata of the right types."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from etdb.publish.sources.coerce import CoerceError, coerce_field, coerce_public, dataset_path


@pytest.mark.parametrize(
    ("field", "raw", "value"),
    [
        ("NCBItaxID", "2287", 2287),
        ("NCBItaxID", " 562 ", 562),
        ("NCBItaxID", Decimal("2287"), 2287),
        ("NCBItaxID", 2287.0, 2287),
        ("tiltSingleDual", 2, 2),
        ("tiltStep", "2", 2.0),
        ("tiltStep", "1.5 deg", 1.5),
        ("tiltStep", "2.0deg", 2.0),
        ("tiltStep", ".5", 0.5),
        ("tiltStep", "", None),
        ("tiltStep", "   ", None),
        ("defocus", "-10", -10.0),
        ("defocus", Decimal("-8.25"), -8.25),
        ("magnification", 22500, 22500.0),
        ("date", date(2014, 1, 14), int(datetime(2014, 1, 14, tzinfo=UTC).timestamp())),
        ("date", datetime(2014, 1, 14, 10), int(datetime(2014, 1, 14, 10, tzinfo=UTC).timestamp())),
        (
            "date",
            datetime(2014, 1, 14, 10, tzinfo=timezone(timedelta(hours=-8))),
            int(datetime(2014, 1, 14, 18, tzinfo=UTC).timestamp()),
        ),
        ("date", "2014-01-14", int(datetime(2014, 1, 14, tzinfo=UTC).timestamp())),
        ("date", "2014-01-14T10:00:00Z", int(datetime(2014, 1, 14, 10, tzinfo=UTC).timestamp())),
        ("date", "1389657600", 1389657600),
        ("date", 1389657600, 1389657600),
        ("speciesName", "  E. coli \\ 'K-12' 🦠 ", "  E. coli \\ 'K-12' 🦠 "),
        ("speciesName", "", ""),
        ("speciesName", "naïve".encode(), "naïve"),
        ("emdb", 1234, "1234"),
        ("title", None, None),
        ("tags", ["a", "b"], ["a", "b"]),
        ("fileNotes", {"./rawdata/x.mrc": "n"}, {"rawdata/x.mrc": "n"}),
    ],
)
def test_coerced(field: str, raw: object, value: object) -> None:
    got = coerce_field(field, raw)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        ("NCBItaxID", "abc", "NCBItaxID: 'abc' is not an integer"),
        ("NCBItaxID", "22.5", "NCBItaxID: '22.5' is not an integer"),
        ("tiltSingleDual", True, "tiltSingleDual: True is not an integer"),
        ("tiltStep", "deg", "tiltStep: 'deg' is not a number"),
        ("defocus", float("nan"), "defocus: nan is not a number"),
        ("date", "14/01/2014", "date: '14/01/2014' is not a date (ISO text or unix seconds)"),
        (
            "date",
            "0000-00-00 00:00:00",
            "date: '0000-00-00 00:00:00' is not a date (ISO text or unix seconds)",
        ),
        ("speciesName", b"\xff\xfe", "speciesName: b'\\xff\\xfe' is not text"),
        ("speciesName", True, "speciesName: True is not text"),
        ("sid", ["a"], "sid: ['a'] is not text"),
        ("fileNotes", {"../x": "n"}, "fileNotes '../x': '..' is not allowed"),
        ("colour", "red", "colour: not a record field"),
    ],
)
def test_refused(field: str, raw: object, message: str) -> None:
    with pytest.raises(CoerceError) as err:
        coerce_field(field, raw)
    assert str(err.value) == message


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(CoerceError) as err:
        coerce_field("NCBItaxID", "x" * 10_000)
    assert len(str(err.value)) < 100


@pytest.mark.parametrize(
    ("raw", "public"),
    [(1, True), (0, False), (None, False), ("yes", True), ("No", False), (True, True)],
)
def test_public(raw: object, public: bool) -> None:
    assert coerce_public(raw) is public


def test_public_refuses_other_values() -> None:
    with pytest.raises(CoerceError, match="public: 2 is not a yes/no value"):
        coerce_public(2)


@pytest.mark.parametrize(
    ("path", "clean"),
    [("rawdata/a.mrc", "rawdata/a.mrc"), ("./a//b.rec", "a/b.rec"), ("it's ü.mrc", "it's ü.mrc")],
)
def test_dataset_paths(path: str, clean: str) -> None:
    assert dataset_path(path) == clean


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../a.mrc", "'..' is not allowed"),
        ("rawdata/../../a.mrc", "'..' is not allowed"),
        ("/etc/passwd", "must be relative"),
        ("C:/data/a.mrc", "must be relative"),
        ("raw\\a.mrc", "backslashes"),
        ("", "empty path"),
        (".", "names no file"),
    ],
)
def test_dataset_paths_refused(path: str, message: str) -> None:
    with pytest.raises(CoerceError, match=message):
        dataset_path(path)
