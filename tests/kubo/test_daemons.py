"""The kubo harness itself: daemons start on loopback, and two connected ones trade blocks."""

from __future__ import annotations

import os

import httpx
import pytest

pytestmark = pytest.mark.kubo


def test_two_connected_daemons_move_a_file_over_bitswap(kubo_pair) -> None:
    first, second = kubo_pair
    body = os.urandom(3 * 256 * 1024 + 7)  # several leaves
    cid = first.cli("add", "-Q", "--pin=true", input=body).stdout.decode().strip()
    assert second.cli("cat", cid).stdout == body
    peers = second.cli("swarm", "peers").stdout.decode()
    assert first.peer_id in peers


def test_gateway_and_rpc_answer_on_loopback(kubo) -> None:
    cid = kubo.cli("add", "-Q", input=b"hello world").stdout.decode().strip()
    assert cid == "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
    assert httpx.get(f"{kubo.gateway_url}/ipfs/{cid}").content == b"hello world"
    version = httpx.post(f"{kubo.api_url}/api/v0/version").json()
    assert version["Version"] == "0.43.1"
