"""Helpers for the real-browser portal tests: an `etdb serve` process over `etdb demo` data plus
one hostile record, and Debian's Chromium driven through Playwright.

Everything runs the way a user runs it: the demo and publishing are real `etdb` subprocesses in
a fresh ETDB_HOME, the portal is a real `etdb serve` on a free loopback port, and the browser is
the system Chromium (Playwright never downloads one). Chromium is started with background
networking off: this machine's network is closed, and a browser that phones home would both
hang on refused connections and break the portal's offline promise we test for.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.conftest import skip_or_fail

CHROMIUM = Path(os.environ.get("ETDB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ETDB = (sys.executable, "-c", "from etdb.cli import main; main()")
DEMO_DATASETS = 6
# The demo key's passphrase (etdb.commands.demo.DEMO_PASSPHRASE): the hostile record is
# published with the same key, through `etdb publish`, as a lab would.
DEMO_KEY = "demo"
DEMO_PASSPHRASE = "etdb-demo-key"
STARTUP_TIMEOUT = 60.0

HOSTILE_SID = "zz2020-02-02-1"
HOSTILE_TITLE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
HOSTILE_NOTES = '<b id="pwned-notes">bold</b><script>window.__pwned=3</script>'
HOSTILE_SPECIES = "Mycoplasma pneumoniae"
HOSTILE_MICROSCOPIST = '<img src=y onerror="window.__pwned=4">Mallory'
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


@dataclass
class Portal:
    """A running `etdb serve` over the demo datasets and the hostile record."""

    url: str  # "http://127.0.0.1:<port>" (no trailing slash)
    home: Path
    demo: dict[str, Any]  # `etdb demo --json` output
    hostile_id: str  # the hostile record's txid
    log: Path

    def __call__(self, path: str) -> str:
        return self.url + path

    @property
    def records(self) -> list[dict[str, Any]]:
        return list(self.demo["records"])

    def api(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=30)
        response.raise_for_status()
        return response.json()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def etdb_env(home: Path) -> dict[str, str]:
    """This environment without any ETDB_* setting, pointed at ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETDB_")}
    env["ETDB_HOME"] = str(home)
    env["ETDB_KEY_PASSPHRASE"] = DEMO_PASSPHRASE
    return env


def run_etdb(home: Path, *args: str, timeout: float = 300) -> str:
    """Run an `etdb` command to completion; its stdout, or an error carrying its output."""
    done = subprocess.run(
        [*ETDB, *args], env=etdb_env(home), capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise AssertionError(
            f"etdb {' '.join(args)} exited {done.returncode}\n"
            f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
        )
    return done.stdout


def write_hostile_dataset(lab: Path) -> Path:
    """A dataset folder (tiny reconstruction, key image) whose metadata is all attack text."""
    import mrcfile
    import numpy as np
    from PIL import Image

    folder = lab / HOSTILE_SID
    (folder / "3dimage_1").mkdir(parents=True)
    data = np.random.default_rng(7).normal(size=(6, 32, 32)).astype(np.float32)
    with mrcfile.new(folder / "3dimage_1" / f"{HOSTILE_SID}_full.rec") as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 10.0
    Image.new("L", (64, 64), color=90).save(folder / f"keyimg_{HOSTILE_SID}.jpg")
    meta = {
        "title": HOSTILE_TITLE,
        "speciesName": HOSTILE_SPECIES,
        "date": "2020-02-02",
        "microscopist": HOSTILE_MICROSCOPIST,
        "institution": "Institute of Imaginary Microbiology",
        "lab": "Phantom Lab",
        "tiltSeriesNotes": HOSTILE_NOTES,
        "tiltMin": -60,
        "tiltMax": 60,
        "tiltStep": 2,
    }
    # JSON string escapes are valid TOML basic strings, so json.dumps writes safe TOML values.
    lines = [f"{key} = {json.dumps(value)}" for key, value in meta.items()]
    (folder / "dataset.toml").write_text("\n".join(lines) + "\n", "utf-8")
    return folder


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, records: int) -> None:
    """Until the server answers and its indexer has every record in the catalog."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"etdb serve exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            status = httpx.get(url + "/api/v1/status", timeout=5).json()
            if status.get("records", 0) >= records:
                return
            last = status
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"etdb serve not ready after {STARTUP_TIMEOUT} s (last: {last!r})")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_portal(root: Path) -> Iterator[Portal]:
    """`etdb demo` data + the hostile record, indexed, served by `etdb serve` until exit."""
    home = root / "etdb-home"
    home.mkdir(parents=True)
    demo = json.loads(run_etdb(home, "demo", "--no-serve", "--datasets", str(DEMO_DATASETS),
                               "--json"))  # fmt: skip
    lab = root / "hostile-lab"
    write_hostile_dataset(lab)
    run_etdb(home, "publish", str(lab), "--key", DEMO_KEY, "--no-media", "--yes", "--json")
    run_etdb(home, "index")
    port = free_port()
    log = root / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*ETDB, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=etdb_env(home),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log, DEMO_DATASETS + 1)
        items = httpx.get(url + "/api/v1/records", params={"limit": 100}, timeout=30).json()
        hostile = [item["id"] for item in items["items"] if item["sid"] == HOSTILE_SID]
        assert len(hostile) == 1, f"the hostile record is not in the catalog: {items}"
        yield Portal(url, home, demo, hostile[0], log)
    finally:
        _stop(proc)


# -- the browser ---------------------------------------------------------------------------------


def playwright_or_skip() -> Any:
    """The sync Playwright entry point, or a skip (a failure in CI) naming what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.is_file() or shutil.which(str(CHROMIUM)) is None:
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    return sync_playwright


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless, with a fresh temporary profile (Playwright's launch makes
    one per browser and deletes it on close)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))


@dataclass
class Traffic:
    """Every request a browser context made, and what its pages reported."""

    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def watch(self, context: Any) -> None:
        context.on("request", lambda request: self.requests.append(request.url))
        context.on("page", self._watch_page)

    def _watch_page(self, page: Any) -> None:
        page.on(
            "console",
            lambda msg: self.console_errors.append(msg.text) if msg.type == "error" else None,
        )
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))

    def foreign(self) -> list[str]:
        """Requests to anything but this machine (data: and blob: URLs stay in the page)."""
        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if (parts.hostname or "") not in LOCAL_HOSTS:
                out.append(url)
        return out


# -- page helpers --------------------------------------------------------------------------------


def number_in(text: str) -> int:
    """The first integer in ``text`` ("1,234 datasets" -> 1234)."""
    match = re.search(r"\d[\d,\u202f\u00a0 ]*", text)
    if match is None:
        raise AssertionError(f"no number in {text!r}")
    return int(re.sub(r"\D", "", match.group()))


def images_without_alt(page: Any) -> list[str]:
    return page.evaluate(
        "() => [...document.images].filter(i => !(i.getAttribute('alt') || '').trim())"
        ".map(i => i.outerHTML)"
    )


def broken_images(page: Any) -> list[str]:
    """Images the browser finished loading without pixels (404s, undecodable bytes);
    lazy images that have not started loading are not counted."""
    return page.evaluate(
        "() => [...document.images].filter(i => i.complete && i.getAttribute('src')"
        " && i.naturalWidth === 0 && i.loading !== 'lazy').map(i => i.src)"
    )


def save_screenshot(page: Any, path: Path) -> None:
    """A full-page screenshot, one pixel per CSS pixel, as a 256-colour PNG: documentation
    images stay small in the repository (the pages are mostly flat colour and grey data)."""
    import io

    from PIL import Image

    png = page.screenshot(full_page=True, scale="css", animations="disabled")
    image = Image.open(io.BytesIO(png)).convert("RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    image.quantize(colors=256, dither=Image.Dither.NONE).save(tmp, format="PNG", optimize=True)
    os.replace(tmp, path)


def horizontal_overflow(page: Any) -> dict[str, Any]:
    """How far the page is wider than the viewport ({} when it fits), and the innermost
    elements that stick out. The layout viewport (``clientWidth``) is the measure: on a phone
    ``innerWidth`` grows with too-wide content (the browser zooms out), hiding the overflow."""
    return page.evaluate(
        """() => {
        const root = document.documentElement, width = root.clientWidth;
        if (root.scrollWidth <= width) return {};
        const out = (e) => e.getBoundingClientRect().right > width + 0.5;
        const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
          + (typeof e.className === 'string' && e.className.trim()
             ? '.' + e.className.trim().split(/ +/).join('.') : '');
        const culprits = [...document.body.querySelectorAll('*')]
          .filter(e => out(e) && ![...e.children].some(out)).map(name);
        return {by: root.scrollWidth - width, elements: [...new Set(culprits)].slice(0, 8)};
      }"""
    )
