"""Property-based: schemathesis drives every route of the published OpenAPI schema with generated
input against the running server (uvicorn, real SQLite store); no answer may be a 5xx.

Each operation gets a bounded number of generated cases (``MAX_EXAMPLES``, no deadline), sent
with the key its route needs (ingest for ``/v1``, acme's portal key for ``/portal``), so the
generated data reaches the handlers instead of stopping at 401.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from ledger.api.keys import create_key
from ledger.session import Session
from ledger.workspace import Workspace
from tests.support.api import CONFIG, customers, plans, start_api
from tests.support.workspaces import METERS_CALLS_TOKENS, write_workspace

MAX_EXAMPLES = 40
KEYS: dict[str, str] = {}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = write_workspace(
        tmp_path_factory.mktemp("schema") / "ws",
        meters=METERS_CALLS_TOKENS,
        plans=plans(),
        customers=customers(),
        config=CONFIG,
    )
    session = Session.open(Workspace.load(root))
    KEYS["ingest"] = create_key(session.engine, session.rules, "ingest").secret
    KEYS["portal"] = create_key(session.engine, session.rules, "portal", "acme").secret
    session.engine.dispose()
    url, service, server, thread = start_api(root)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.session.engine.dispose()


def drive(api: str, operation: Any, key: str) -> None:
    """Generated cases of one operation, sent with ``key``: none may answer 5xx."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: Any) -> None:
        response = case.call(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert response.status_code < 500, (
            case.method,
            case.formatted_path,
            response.status_code,
            response.text[:500],
        )
        if response.status_code >= 400 and case.path != "/portal/login":
            kind = response.headers.get("content-type") or [""]
            assert kind[0].startswith("application/json"), response.text[:200]

    run()


def test_no_route_answers_5xx(api: str) -> None:
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 12  # every route of the app, each driven below
    for operation in operations:
        drive(
            api, operation, KEYS["ingest"] if operation.path.startswith("/v1") else KEYS["portal"]
        )
