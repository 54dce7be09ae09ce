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

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.npm_reference import NpmReference

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


REFERENCE = NpmReference(
    HERE,
    SCRIPT,
    "helia-verified-fetch",
    ("@helia/verified-fetch", "@ipld/car", "helia"),
    "@helia/verified-fetch",
)


def helia_client() -> HeliaClient:
    """The installed client, or skip/fail the calling test (the failure is remembered)."""
    return HeliaClient(REFERENCE.folder())


if __name__ == "__main__":
    raise SystemExit(REFERENCE.main())
