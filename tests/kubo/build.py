"""Building kubo's ``ipfs`` command for the tests, once per machine, into a cache folder.

``gomod/`` is a small Go module of ours whose main package is kubo's (``go install
github.com/ipfs/kubo/cmd/ipfs@v0.43.1`` refuses: kubo's go.mod has a replace directive, which
only the main module may carry). Everything comes from the Go module proxy, checked against
``gomod/go.sum``. The binary goes to ``$ETDB_REFERENCE_CACHE`` (default
``~/.cache/etdb-test-references``) ``/kubo-bin/<version>/ipfs``; a stamp is written only after
the built binary reports its version and gives kubo's CID for "hello world". Installs are
serialized by a file lock, so parallel test processes never build twice.

``python -m tests.kubo.build --install`` builds it ahead of pytest (``make test`` does).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.content.references import (
    HELLO,
    HELLO_V0,
    ReferenceUnavailable,
    _locked,
    cache_dir,
)

HERE = Path(__file__).resolve().parent
GOMOD = HERE / "gomod"
KUBO_VERSION = "0.43.1"
BUILD_TIMEOUT = 1800  # a cold module cache on 2 cores: downloads plus ~6 minutes of compiling


def binary_path() -> Path:
    return cache_dir() / "kubo-bin" / f"v{KUBO_VERSION}" / "ipfs"


def install() -> Path:
    """The path of a working ``ipfs`` binary of ``KUBO_VERSION``, building it if needed;
    :class:`ReferenceUnavailable` (with the Go toolchain's words) when it cannot be built."""
    binary = binary_path()
    folder = binary.parent
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "installed"
    with _locked(folder / "install.lock"):
        if stamp.exists() and stamp.read_text() == KUBO_VERSION and binary.exists():
            return binary
        stamp.unlink(missing_ok=True)
        go = shutil.which("go")
        if go is None:
            raise ReferenceUnavailable("go: not found (kubo is built from the Go module proxy)")
        with tempfile.TemporaryDirectory(prefix="etdb-kubo-build-") as tmp:
            # Build from a copy (the checkout stays untouched), next to the binary's final
            # place so that the rename below is atomic (same filesystem).
            src = Path(tmp) / "src"
            shutil.copytree(GOMOD, src)
            out = folder / "ipfs.partial"
            env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
            _run([go, "build", "-trimpath", "-o", str(out), "."], cwd=src, env=env)
            _check(out, Path(tmp))
            os.replace(out, binary)
        stamp.write_text(KUBO_VERSION)
    return binary


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            timeout=BUILD_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
            **kw,
        )
    except subprocess.TimeoutExpired as exc:
        raise ReferenceUnavailable(
            f"{' '.join(cmd[:3])}: timed out after {BUILD_TIMEOUT}s"
        ) from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-1500:]
        raise ReferenceUnavailable(f"{' '.join(cmd[:3])} exited {proc.returncode}: {tail}")
    return proc


def _check(binary: Path, tmp: Path) -> None:
    """The binary is kubo of the pinned version and gives kubo's CID for 'hello world'."""
    env = {**os.environ, "IPFS_PATH": str(tmp / "repo")}
    version = _run([str(binary), "version", "--number"], env=env).stdout.decode().strip()
    if version != KUBO_VERSION:
        raise ReferenceUnavailable(f"built ipfs reports version {version!r}, not {KUBO_VERSION}")
    hello = tmp / "hello.txt"
    hello.write_bytes(HELLO)
    _run([str(binary), "init", "--profile=test", "--empty-repo"], env=env)
    got = _run([str(binary), "add", "-Q", "--only-hash", str(hello)], env=env).stdout
    if got.decode().strip() != HELLO_V0:
        raise ReferenceUnavailable(f"built ipfs gives {got!r} for 'hello world', not {HELLO_V0}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="build kubo if not built yet")
    args = parser.parse_args(argv)
    if not args.install:
        print(binary_path())
        return 0
    try:
        print(f"kubo {KUBO_VERSION}: {install()}")
    except ReferenceUnavailable as exc:
        print(f"kubo {KUBO_VERSION}: unavailable: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
