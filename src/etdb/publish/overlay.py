"""Generated media of a dataset, kept beside (never inside) the lab's folder.

ETDB's dataset page wants a key image, a thumbnail and a key movie. A dataset whose folder has
none of them gets them made from its reconstruction (``etdb.publish.media``) into
``<media_dir>/<sid>/`` under go-etdb's names, and the importer *overlays* them on the folder
(``Importer.add_path(overlay=...)``): the record lists them as if they were in it, and the lab's
data folders stay untouched (they may well be read-only). Media are made once and reused by
later runs, so the content fingerprint (which covers them) stays stable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from etdb.publish.media import MediaError, find_reconstruction, key_image, key_movie, thumbnail

__all__ = ["MEDIA_SUBTYPES", "MediaPlan", "make_media", "media_names", "plan_media"]

#: The subtypes a dataset page needs, in the order they are made (the thumbnail shrinks the
#: key image).
MEDIA_SUBTYPES = ("keyimg", "thumbnail", "keymov")


def media_names(sid: str) -> dict[str, str]:
    """subtype -> go-etdb file name."""
    return {
        "keyimg": f"keyimg_{sid}.jpg",
        "thumbnail": f"keyimg_{sid}_s.jpg",
        "keymov": f"keymov_{sid}.mp4",
    }


@dataclass(frozen=True)
class MediaPlan:
    overlay: dict[str, Path]  # generated files that exist already: name -> file
    to_make: tuple[str, ...]  # names still to generate (subtype order)
    reconstruction: Path | None  # what they are made from
    key_image: Path | None  # what a thumbnail is shrunk from (the folder's own, if it has one)
    note: str | None = None  # why some media cannot be made


def plan_media(
    folder: Path, sid: str, media_dir: Path, listed: Iterable[tuple[str, str]]
) -> MediaPlan:
    """Which media the dataset lacks, given its ``listed`` files as (fname, subtype)."""
    listed = list(listed)
    present = {subtype for _, subtype in listed}
    names = {fname for fname, _ in listed}
    own_key_image = next((folder / f for f, s in listed if s == "keyimg"), None)
    target = media_dir / sid
    overlay: dict[str, Path] = {}
    wanted: list[str] = []
    for subtype, name in media_names(sid).items():
        if subtype in present or name in names:
            continue  # the lab's own file (or a name we must not shadow)
        if (target / name).is_file():
            overlay[name] = target / name
        else:
            wanted.append(subtype)
    if not wanted:
        return MediaPlan(overlay, (), None, own_key_image)
    reconstruction = find_reconstruction(folder)
    key_img = own_key_image or overlay.get(media_names(sid)["keyimg"])
    if reconstruction is None:
        # A thumbnail needs only a key image; everything else needs the volume.
        makeable = [s for s in wanted if s == "thumbnail" and key_img is not None]
        lacking = [media_names(sid)[s] for s in wanted if s not in makeable]
        note = f"no reconstruction (3dimage_*/*.rec) to make {', '.join(lacking)} from"
        return MediaPlan(overlay, tuple(media_names(sid)[s] for s in makeable), None, key_img, note)
    return MediaPlan(overlay, tuple(media_names(sid)[s] for s in wanted), reconstruction, key_img)


def make_media(plan: MediaPlan, sid: str, media_dir: Path) -> dict[str, Path]:
    """Generate ``plan.to_make`` into ``<media_dir>/<sid>/``; return the whole overlay.

    Each file is written under a temporary name and renamed (``etdb.publish.media``), so a crash
    leaves either a complete file or none. Raises MediaError.
    """
    names = media_names(sid)
    target = media_dir / sid
    overlay = dict(plan.overlay)
    key_img = plan.key_image
    for name in plan.to_make:
        out = target / name
        if name == names["keyimg"]:
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
