"""`create_app` mounts every part it names or fails: an unknown name, a missing module or a
module without its router is an error when the app is built, never a feature quietly absent.
(Before: a part or portal page whose module was missing was skipped.)"""

from __future__ import annotations

import pytest

import etdb.web
from etdb.api import app as app_module
from etdb.api.app import PARTS, create_app


def test_the_default_app_answers_for_every_part(client):
    assert client.get("/api/v1/status").status_code == 200  # v1
    assert client.get("/api/v2/info").status_code == 200  # compat
    assert client.get("/api/docs").status_code == 200  # docs
    assert client.get("/ipfs/not-a-cid").status_code == 400  # gateway: the route answered
    assert client.post("/api/v0/version").status_code == 200  # kubo_rpc
    assert client.get("/").status_code == 200  # portal
    assert client.get("/browse").status_code == 200


def test_an_unknown_part_name_is_an_error(catalog, settings):
    with pytest.raises(ValueError, match=r"unknown app part.*'gatway'"):
        create_app(catalog, settings=settings, parts=["v1", "gatway"])


@pytest.mark.parametrize(
    "target, error",
    [
        ("etdb.web.no_such_part:install", ModuleNotFoundError),
        ("etdb.api.v1:no_such_router", ImportError),
    ],
)
def test_a_part_that_does_not_load_is_an_error(catalog, settings, monkeypatch, target, error):
    monkeypatch.setitem(PARTS, "extra", target)
    with pytest.raises(error):
        create_app(catalog, settings=settings, parts=["v1", "extra"])
    assert app_module.PARTS is PARTS


def test_a_missing_portal_page_is_an_error(catalog, settings, monkeypatch):
    monkeypatch.setattr(etdb.web, "ROUTERS", (*etdb.web.ROUTERS, "etdb.web.no_such_page"))
    with pytest.raises(ModuleNotFoundError, match="no_such_page"):
        create_app(catalog, settings=settings)
