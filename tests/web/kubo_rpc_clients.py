"""The real kubo RPC clients for the RPC tests, installed by this harness itself.

``tests/web/kubo_rpc_clients/``: ``package.json`` pins ``ipfs-api`` 22.3.0 (the last 22.x, what
the original ETDB-downloads CLI calls ``files.getReadableStream`` and ``ls`` with) and
``kubo-rpc-client`` 7.1.0; ``clients.mjs`` runs a list of calls of either against one server.
ipfs-api 22's ``libp2p-crypto`` names ``webcrypto-shim`` by a GitHub URL, which needs git and
GitHub at install time; the package.json overrides it with the same package from the npm
registry (0.1.7; a browser shim, never loaded by Node). Installed into the reference cache
(``$ETDB_REFERENCE_CACHE`` or ``~/.cache/etdb-test-references``, as ``tests/web/helia_client.py``
does): under a file lock, with a stamp (the package.json's hash) written only after a check that
both modules load, so installing is idempotent and parallel test processes do not race.
``npm install --ignore-scripts``: no native build is needed.

``python -m tests.web.kubo_rpc_clients --install`` pre-installs (``make test`` does); the tests
use :func:`rpc_clients`, which skips (laptop) or fails (CI) when they cannot be prepared.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.npm_reference import NpmReference

HERE = Path(__file__).resolve().parent / "kubo_rpc_clients"
SCRIPT = "clients.mjs"


@dataclass(frozen=True)
class RpcClients:
    folder: Path

    def run(
        self, api: str, ops: Sequence[dict[str, Any]], *, watchdog: float = 120.0
    ) -> list[dict[str, Any]]:
        """Run ``ops`` (see clients.mjs) against the RPC API at ``api``: one result per op.
        The script exits on its own after ``watchdog`` seconds; the timeout is a second fence."""
        cmd = ["node", SCRIPT, api, str(int(watchdog)), json.dumps(list(ops))]
        try:
            proc = subprocess.run(
                cmd, cwd=self.folder, capture_output=True, timeout=watchdog + 30, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"{SCRIPT} ignored its {watchdog} s watchdog") from exc
        lines = proc.stdout.decode().splitlines()
        if proc.returncode != 0 or len(lines) != len(ops):
            stderr = proc.stderr.decode(errors="replace")[-2000:]
            raise AssertionError(f"{SCRIPT} exited {proc.returncode}:\n{stderr}")
        return [json.loads(line) for line in lines]


REFERENCE = NpmReference(
    HERE, SCRIPT, "kubo-rpc-clients", ("ipfs-api", "kubo-rpc-client"), "ipfs-api / kubo-rpc-client"
)


def rpc_clients() -> RpcClients:
    """The installed clients, or skip/fail the calling test (the failure is remembered)."""
    return RpcClients(REFERENCE.folder())


if __name__ == "__main__":
    raise SystemExit(REFERENCE.main())
