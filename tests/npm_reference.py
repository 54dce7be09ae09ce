"""npm packages that tests run as reference clients, installed into the reference cache once.

A client is a folder of ours (``package.json`` pinning exact versions, plus the ``.mjs`` script
that drives the packages), installed into ``$ETDB_REFERENCE_CACHE`` or
``~/.cache/etdb-test-references`` (``tests/content/references.py``) under a file lock, with a
stamp (the package.json's hash) written only after a check that the modules load: installing
is idempotent and parallel test processes do not race. ``npm install --ignore-scripts``: no
native build is needed. :class:`NpmReference` gives each client its ``install``, its
skip-or-fail accessor for tests and its ``python -m ... --install`` entry point.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import skip_or_fail
from tests.content.references import INSTALL_TIMEOUT, ReferenceUnavailable, _locked, _run, cache_dir


@dataclass(frozen=True)
class NpmReference:
    """``source``: our folder (package.json + ``script``); ``cache_name``: its folder in the
    cache; ``modules``: what must import for the install to count; ``what``: its name in
    messages."""

    source: Path
    script: str
    cache_name: str
    modules: tuple[str, ...]
    what: str

    def install(self) -> Path:
        """The installed folder (``script`` beside its ``node_modules``); ReferenceUnavailable
        when node/npm are missing or the install fails."""
        if shutil.which("node") is None or shutil.which("npm") is None:
            raise ReferenceUnavailable(f"node and npm are needed for {self.what}")
        folder = cache_dir() / self.cache_name
        folder.mkdir(exist_ok=True)
        stamp = folder / "installed"
        with _locked(folder / "install.lock"):
            script = (self.source / self.script).read_bytes()
            if not (folder / self.script).exists() or (folder / self.script).read_bytes() != script:
                (folder / self.script).write_bytes(script)  # edits to the script need no reinstall
            pins = hashlib.sha256((self.source / "package.json").read_bytes()).hexdigest()
            if stamp.exists() and stamp.read_text() == pins:
                return folder
            stamp.unlink(missing_ok=True)
            shutil.copyfile(self.source / "package.json", folder / "package.json")
            npm = ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--silent"]
            _run(npm, timeout=INSTALL_TIMEOUT, cwd=folder)
            check = "; ".join(f"await import('{m}')" for m in self.modules)
            _run(["node", "--input-type=module", "-e", check], timeout=120, cwd=folder)
            stamp.write_text(pins)
        return folder

    def folder(self) -> Path:
        """The installed folder, or skip/fail the calling test (the failure is remembered)."""
        got = _prepared(self)
        if isinstance(got, ReferenceUnavailable):
            skip_or_fail(f"{self.what} unavailable: {got}")
            raise AssertionError("unreachable")  # skip_or_fail raises
        return got

    def main(self, argv: Sequence[str] | None = None) -> int:
        """``--install``: install now (``make test`` does, before pytest)."""
        parser = argparse.ArgumentParser(description=f"The {self.what} reference client.")
        parser.add_argument("--install", action="store_true", help=f"install {self.what}")
        args = parser.parse_args(argv)
        if not args.install:
            parser.print_help()
            return 0
        try:
            folder = self.install()
        except ReferenceUnavailable as exc:
            print(f"{self.what}: unavailable: {exc}", file=sys.stderr)
            return 1
        print(f"{self.what}: ready in {folder}")
        return 0


@functools.cache
def _prepared(reference: NpmReference) -> Path | ReferenceUnavailable:
    try:
        return reference.install()
    except ReferenceUnavailable as exc:
        return exc
