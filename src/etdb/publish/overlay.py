"""Generated media of a dataset, kept beside (never inside) the lab's folder.

ETDB's dataset page wants a key image, a thumbnail and a key movie. A dataset whose folder lacks
them gets them made into ``<media_dir>/<sid>/`` under go-etdb's names, and the importer
*overlays* them on the folder (``Importer.add_path(overlay=...)``): the record lists them as if
they were in it, and the lab's data folders stay untouched (they may well be read-only). Media
are made once and reused by later runs, so the content fingerprint (which covers them) stays
stable.

Two sources, in this order:

- the lab's legacy key movie ``keymov_<sid>.flv`` is converted to ``keymov_<sid>.mp4``
  (``etdb.publish.transcode``, as go-etdb did); both are then listed. One that cannot be
  converted is a warning: the dataset is published with the FLV alone;
- whatever is still missing is *generated* from the reconstruction (``etdb.publish.media``):
  etdb's addition, which ETDB-Caltech did not have.

A source may say whether the lab has a key image / key movie (``SourceDataset.key_media``, the
Caltech ``TiltSeriesData.keyimg``/``keymov`` flags: 1..4 yes, else no, as go-etdb read them).
Where it says *no*, a ``keyimg_<sid>*``/``keymov_<sid>.*`` file in the folder is stale: it is
neither converted nor used, and since publishing it would present it as the lab's, the dataset
is refused with the reason (remove the file or fix the flag). Generated media still fill the gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from etdb.publish.media import MediaError, find_reconstruction, key_image, key_movie, thumbnail
from etdb.publish.source import KEY_MEDIA_FLAGS
from etdb.publish.transcode import (
    LEGACY_MOVIE_SUFFIX,
    convert_flv,
    failed_conversion,
    flv_problem,
    remember_failure,
)

__all__ = [
    "MEDIA_SUBTYPES",
    "MediaPlan",
    "StaleMediaError",
    "legacy_movie_name",
    "make_media",
    "media_names",
    "plan_media",
]

#: The subtypes a dataset page needs, in the order they are made (the thumbnail shrinks the
#: key image).
MEDIA_SUBTYPES = ("keyimg", "thumbnail", "keymov")


class StaleMediaError(MediaError):
    """The folder holds key media the source says the lab does not have."""


def media_names(sid: str) -> dict[str, str]:
    """subtype -> go-etdb file name."""
    return {
        "keyimg": f"keyimg_{sid}.jpg",
        "thumbnail": f"keyimg_{sid}_s.jpg",
        "keymov": f"keymov_{sid}.mp4",
    }


def legacy_movie_name(sid: str) -> str:
    """The lab's Flash key movie, converted to ``media_names(sid)["keymov"]``."""
    return str(PurePosixPath(media_names(sid)["keymov"]).with_suffix(LEGACY_MOVIE_SUFFIX))


@dataclass(frozen=True)
class MediaPlan:
    overlay: dict[str, Path]  # media made by an earlier run that exist: name -> file
    to_make: tuple[str, ...]  # names still to make (subtype order)
    reconstruction: Path | None  # what generated media are made from
    key_image: Path | None  # what a thumbnail is shrunk from (the folder's own, if it has one)
    note: str | None = None  # why some media cannot be made (a warning for the run report)
    legacy_movie: Path | None = None  # the lab's .flv the key movie is converted from


def _stale(listed: list[tuple[str, str]], flags: Mapping[str, bool]) -> list[str]:
    """The listed key-media files that a flag says the lab does not have."""
    denied = {s for flag, subs in KEY_MEDIA_FLAGS.items() if flags.get(flag) is False for s in subs}
    return sorted(fname for fname, subtype in listed if subtype in denied)


def _legacy_movie(
    folder: Path, sid: str, target: Path, listed: list[tuple[str, str]], notes: list[str]
) -> Path | None:
    """The lab's ``keymov_<sid>.flv`` if it is to be converted now (None: absent, or it cannot
    be: the reason goes to ``notes``)."""
    name = legacy_movie_name(sid)
    if (name, "keymov") not in listed:
        return None
    flv, out = folder / name, target / media_names(sid)["keymov"]
    why = failed_conversion(flv, out) or flv_problem(flv)
    if why is not None:
        notes.append(f"{name} cannot be converted to MP4, published without it: {why}")
        return None
    return flv


def plan_media(
    folder: Path,
    sid: str,
    media_dir: Path,
    listed: Iterable[tuple[str, str]],
    key_media: Mapping[str, bool] | None = None,
) -> MediaPlan:
    """Which media the dataset lacks, given its ``listed`` files as (fname, subtype) and the
    source's ``key_media`` flags (see the module docstring). StaleMediaError if the folder holds
    key media a flag denies."""
    listed = list(listed)
    stale = _stale(listed, key_media or {})
    if stale:
        raise StaleMediaError(
            f"{', '.join(stale)}: in the folder, but the source says the lab has no "
            f"{' or '.join(k for k, v in (key_media or {}).items() if v is False)} for {sid}; "
            "a stale file must not be published as the lab's (remove it, or fix the flag)"
        )
    names = media_names(sid)
    lab_movies = {f for f, s in listed if s == "keymov"}
    present = {s for _, s in listed if s != "keymov"} | (
        {"keymov"} if lab_movies - {legacy_movie_name(sid)} else set()
    )
    taken = {fname for fname, _ in listed}
    own_key_image = next((folder / f for f, s in listed if s == "keyimg"), None)
    target = media_dir / sid
    overlay: dict[str, Path] = {}
    wanted: list[str] = []
    for subtype, name in names.items():
        if subtype in present or name in taken:
            continue  # the lab's own file (or a name we must not shadow)
        if (target / name).is_file():
            overlay[name] = target / name
        else:
            wanted.append(subtype)
    notes: list[str] = []
    legacy = _legacy_movie(folder, sid, target, listed, notes) if "keymov" in wanted else None
    if legacy is None and legacy_movie_name(sid) in lab_movies and "keymov" in wanted:
        wanted.remove("keymov")  # the lab has a key movie; it just cannot be converted
    key_img = own_key_image or overlay.get(names["keyimg"])
    generated = [s for s in wanted if not (s == "keymov" and legacy is not None)]
    reconstruction = find_reconstruction(folder) if generated else None
    if generated and reconstruction is None:
        # A thumbnail needs only a key image; everything else needs the volume.
        lacking = [names[s] for s in generated if not (s == "thumbnail" and key_img is not None)]
        if lacking:
            notes.append(f"no reconstruction (3dimage_*/*.rec) to make {', '.join(lacking)} from")
        wanted = [s for s in wanted if names[s] not in lacking]
    note = "; ".join(notes) or None
    to_make = tuple(names[s] for s in wanted)
    return MediaPlan(overlay, to_make, reconstruction, key_img, note, legacy)


def make_media(plan: MediaPlan, sid: str, media_dir: Path) -> dict[str, Path]:
    """Make ``plan.to_make`` into ``<media_dir>/<sid>/``; return the whole overlay.

    Each file is written under a temporary name and renamed, so a crash leaves either a
    complete file or none. A legacy movie that fails to convert is left out (and remembered,
    so later runs report it without retrying); anything else raises MediaError.
    """
    names = media_names(sid)
    target = media_dir / sid
    overlay = dict(plan.overlay)
    key_img = plan.key_image
    for name in plan.to_make:
        out = target / name
        if name == names["keymov"] and plan.legacy_movie is not None:
            try:
                convert_flv(plan.legacy_movie, out)
            except MediaError as exc:
                remember_failure(plan.legacy_movie, out, str(exc))
                continue
        elif name == names["keyimg"]:
            assert plan.reconstruction is not None
            key_img = key_image(plan.reconstruction, out)
        elif name == names["thumbnail"]:
            if key_img is None:
                raise MediaError(f"{sid}: no key image to make the thumbnail from")
            thumbnail(key_img, out)
        else:
            assert plan.reconstruction is not None
            key_movie(plan.reconstruction, out)
        overlay[name] = out
    return overlay
