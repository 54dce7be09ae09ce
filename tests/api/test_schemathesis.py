"""Property-based API tests: schemathesis reads /api/openapi.json, generates requests (valid and
invalid) for every operation and runs them against the ASGI app over the real test catalog.

Checks: no 5xx ever (bad input is the client's problem, answered 4xx), and every answer
matches the documented status codes and response schemas (so the document does not lie).
Examples per operation are kept modest so the suite stays well under a minute.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from etdb.api import create_app

EXAMPLES = 100
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema(catalog, settings):  # type: ignore[no-untyped-def]
    app = create_app(catalog, settings=settings, export_rows=20)
    return schemathesis.openapi.from_asgi("/api/openapi.json", app)


#: Operations, and whether they have parameters that invalid values can be generated for.
OPERATIONS = {
    "/api/v1/records": True,
    "/api/v1/records/{id}": True,
    "/api/v1/publishers": False,
    "/api/v1/summary": False,
    "/api/v1/status": False,
    "/api/v1/health": False,
    "/api/v1/rejections": True,
    "/api/v2/artifact/get/type": True,
    "/api/v2/artifact/get": True,
    "/api/v2/research/tomogram/summary": False,
    "/api/v2/search": True,
    "/api/v2/publisher/get/all": False,
    "/api/v2/info": False,
}
METHODS = {"/api/v2/search": "POST"}  # the others are GET
CASES = [
    (path, mode)
    for path, negative in OPERATIONS.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if negative or mode is GenerationMode.POSITIVE
]


def test_openapi_document_loads_and_validates(api_schema) -> None:  # type: ignore[no-untyped-def]
    api_schema.validate()
    labels = {op.ok().label for op in api_schema.get_all_operations()}
    assert labels == {f"{METHODS.get(path, 'GET')} {path}" for path in OPERATIONS}


# schemathesis' own pytest plugin (schema.parametrize) does not run under pytest 9; driving
# hypothesis directly with each operation's strategy is equivalent.
@pytest.mark.slow
@pytest.mark.parametrize(("path", "mode"), CASES, ids=[f"{p}-{m.value}" for p, m in CASES])
def test_generated_requests(api_schema, path: str, mode: GenerationMode) -> None:  # type: ignore[no-untyped-def]
    operation = api_schema[path][METHODS.get(path, "GET")]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,  # the same cases every run: a failure reproduces
    )
    def check(case) -> None:  # type: ignore[no-untyped-def]
        response = case.call()
        case.validate_response(response, checks=CHECKS)

    check()
