"""An independent IPFS client for the gateway interop tests, installed by this harness itself.

``tests/web/helia/``: ``package.json`` pins ``@helia/verified-fetch`` (and ``@ipld/car``), with
``undici`` held at 7.x because 8.x needs Node 22 and this project supports Node 20;
``verified_fetch.mjs`` runs it with an etdb gateway as its only source. Both are installed into
the reference cache (``$ETDB_REFERENCE_CACHE`` or ``~/.cache/etdb-test-references``, as in
``tests/content/references.py``), under a file lock and with a stamp (the package.json's
hash) written only after a check that the modules load, so installing is idempotent and
parallel test processes do not race. ``npm install --ignore-scripts``: the client needs no
native build (libp2p's WebRTC and friends are never started).

``python -m tests.web.helia_client --install`` pre-installs (``make test`` does); the tests use
:func:`helia_client`, which skips (laptop) or fails (CI) when it cannot be prepared.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import skip_or_fail
from tests.content.references import INSTALL_TIMEOUT, ReferenceUnavailable, _locked, _run, cache_dir

HERE = Path(__file__).resolve().parent / "helia"
SCRIPT = "verified_fetch.mjs"


@dataclass(frozen=True)
class HeliaClient:
    folder: Path

    def fetch(
        self, gateway: str, items: Sequence[str], *, watchdog: float = 60.0
    ) -> tuple[int, list[dict[str, Any]]]:
        """Run the script on ``items`` (``ipfs://...`` or ``car:/ipfs/...``) against ``gateway``:
        its exit status and one result per item. The script exits on its own after
        ``watchdog`` seconds; the subprocess timeout is a second fence."""
        cmd = ["node", SCRIPT, gateway, str(int(watchdog)), *items]
        try:
            proc = subprocess.run(
                cmd, cwd=self.folder, capture_output=True, timeout=watchdog + 30, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"verified_fetch.mjs ignored its {watchdog} s watchdog") from exc
        lines = proc.stdout.decode().splitlines()
        if proc.returncode not in (0, 1) or len(lines) != len(items):
            stderr = proc.stderr.decode(errors="replace")[-2000:]
            raise AssertionError(f"verified_fetch.mjs exited {proc.returncode}:\n{stderr}")
        return proc.returncode, [json.loads(line) for line in lines]


def _pins() -> str:
    return hashlib.sha256((HERE / "package.json").read_bytes()).hexdigest()


def install() -> HeliaClient:
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise ReferenceUnavailable("node and npm are needed for @helia/verified-fetch")
    folder = cache_dir() / "helia-verified-fetch"
    folder.mkdir(exist_ok=True)
    stamp = folder / "installed"
    with _locked(folder / "install.lock"):
        source = (HERE / SCRIPT).read_bytes()
        if not (folder / SCRIPT).exists() or (folder / SCRIPT).read_bytes() != source:
            (folder / SCRIPT).write_bytes(source)  # edits to the script need no reinstall
        pins = _pins()
        if stamp.exists() and stamp.read_text() == pins:
            return HeliaClient(folder)
        stamp.unlink(missing_ok=True)
        shutil.copyfile(HERE / "package.json", folder / "package.json")
        npm = ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--silent"]
        _run(npm, timeout=INSTALL_TIMEOUT, cwd=folder)
        check = "await import('@helia/verified-fetch'); await import('@ipld/car'); await import('helia')"
        _run(["node", "--input-type=module", "-e", check], timeout=120, cwd=folder)
        stamp.write_text(pins)
    return HeliaClient(folder)


@functools.cache
def _prepared() -> HeliaClient | ReferenceUnavailable:
    try:
        return install()
    except ReferenceUnavailable as exc:
        return exc


def helia_client() -> HeliaClient:
    """The installed client, or skip/fail the calling test (the failure is remembered)."""
    got = _prepared()
    if isinstance(got, ReferenceUnavailable):
        skip_or_fail(f"@helia/verified-fetch unavailable: {got}")
        raise AssertionError("unreachable")  # skip_or_fail raises
    return got


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--install", action="store_true", help="install @helia/verified-fetch")
    args = parser.parse_args(argv)
    if not args.install:
        parser.print_help()
        return 0
    try:
        client = install()
    except ReferenceUnavailable as exc:
        print(f"@helia/verified-fetch: unavailable: {exc}", file=sys.stderr)
        return 1
    print(f"@helia/verified-fetch: ready in {client.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
