"""The old ETDB-Caltech site's addresses (etdb-react's routes `/featured/:id`, `/terms`,
`/thirdpartyapps`) answer on the portal: the real app over a real SQLite catalog."""

from __future__ import annotations

import pytest

from etdb.web.pages import APPS
from tests.web.conftest import PortalClient
from tests.web.test_pages import Elements


@pytest.mark.parametrize("path", ["/terms", "/thirdpartyapps"])
def test_old_pages_answer_with_a_page_and_its_json_twin(
    portal_client: PortalClient, path: str
) -> None:
    client, _ = portal_client()
    html = client.get(path)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    dom = Elements(html.text)
    assert len(dom.select("h1")) == 1
    assert not [e for e in dom.found if "style" in e["attrs"]]
    assert all(s["attrs"].get("src", "").startswith("/static/") for s in dom.select("script"))
    twin = client.get(path + ".json")
    assert twin.status_code == 200 and twin.headers["content-type"] == "application/json"


def test_terms_warn_that_metadata_may_be_wrong(portal_client: PortalClient) -> None:
    client, _ = portal_client()
    page = client.get("/terms").text
    assert "The metadata may be wrong" in page and "doi.org/10.1371/journal.pone.0215531" in page


def test_third_party_apps_lists_etdb_downloads_and_etdb_itself(portal_client: PortalClient) -> None:
    client, _ = portal_client()
    dom = Elements(client.get("/thirdpartyapps").text)
    names = [li["text"].split(":")[0].strip() for li in dom.select("li", cls="app")]
    assert names == [a["name"] for a in APPS]
    assert "ETDB-downloads" in names and "etdb command line" in names
    assert client.get("/thirdpartyapps.json").json()["apps"] == list(APPS)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Gas%20Vesicles", "gas-vesicles"),
        ("gas_vesicles", "gas-vesicles"),
        ("contractile", "contractile-injection-machines"),
        ("Chemoreceptor-Arrays", "chemoreceptor-arrays"),
        ("DNA", "dna"),
    ],
)
def test_old_featured_section_names_redirect_to_the_category(
    portal_client: PortalClient, old: str, new: str
) -> None:
    client, _ = portal_client()
    moved = client.get(f"/featured/{old}", follow_redirects=False)
    assert moved.status_code == 301 and moved.headers["location"] == f"/featured/{new}"
    assert client.get(f"/featured/{old}").status_code == 200
    twin = client.get(f"/featured/{old}.json", follow_redirects=False)
    assert twin.headers["location"] == f"/featured/{new}.json"


@pytest.mark.parametrize("name", ["cell", "no-such-thing", "---", "x" * 300])
def test_unknown_or_ambiguous_sections_are_404_not_a_guess(
    portal_client: PortalClient, name: str
) -> None:
    client, _ = portal_client()
    assert client.get(f"/featured/{name}", follow_redirects=False).status_code == 404
