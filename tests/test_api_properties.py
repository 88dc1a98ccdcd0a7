"""Property: the API judges and counts rows exactly as file ingest does.

For generated batches of events (ids from a small pool, so duplicates and
conflicts occur; known and unknown customers and types; times from 2020 to an
hour ahead; token counts valid or not), one request to ``POST /v1/events`` and
the same events as a ``.jsonl`` file through ``meterbook ingest``'s engine into
another store give the same accounting: the same counts and the same reasons.
Always ``received = accepted + duplicates + conflicts + rejected``, and the
request sent again accepts nothing.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.api.keys import create_key
from ledger.ingest import default_importers, ingest_file, select_importer
from ledger.session import Session
from ledger.workspace import Workspace
from tests.support.api import CONFIG, customers, plans, start_api
from tests.support.workspaces import METERS_CALLS_TOKENS, write_workspace

NOW = datetime.now(UTC)
TIMES = st.sampled_from(
    [
        NOW - timedelta(minutes=5),
        NOW - timedelta(days=400),
        datetime(2020, 1, 5, tzinfo=UTC),
        NOW + timedelta(hours=1),
        NOW + timedelta(minutes=2),
    ]
)
EVENT = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["a", "b", "c", "d", ""]),
        "customer": st.sampled_from(["acme", "beta", "nobody"]),
        "type": st.sampled_from(["api.request", "llm.completion", "other"]),
        "time": TIMES.map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")) | st.just("not a time"),
        "properties": st.fixed_dictionaries(
            {}, optional={"tokens": st.sampled_from(["12", "1.5", "-3", "x"])}
        ),
    }
)
RUN = itertools.count()


@pytest.fixture(scope="module")
def two_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Session]]:
    base = tmp_path_factory.mktemp("props")
    api_root = write_workspace(
        base / "api",
        meters=METERS_CALLS_TOKENS,
        plans=plans(),
        customers=customers(),
        config=CONFIG,
    )
    file_root = write_workspace(
        base / "file",
        meters=METERS_CALLS_TOKENS,
        plans=plans(),
        customers=customers(),
        config=CONFIG,
    )
    session = Session.open(Workspace.load(api_root))
    key = create_key(session.engine, session.rules, "ingest").secret
    session.engine.dispose()
    url, service, server, thread = start_api(api_root)
    files = Session.open(Workspace.load(file_root))
    try:
        yield url, key, files
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.session.engine.dispose()
        files.engine.dispose()


def counts(report: dict[str, Any]) -> tuple[Any, ...]:
    return (
        *(report[k] for k in ("received", "accepted", "duplicates", "conflicts", "rejected")),
        report["reasons"],
    )


@given(events=st.lists(EVENT, min_size=1, max_size=12))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_the_api_accounts_for_rows_as_file_ingest_does(
    two_stores: tuple[str, str, Session], events: list[dict[str, Any]]
) -> None:
    url, key, files = two_stores
    run = next(RUN)
    for event in events:  # a fresh id space per example; "" stays missing
        event["id"] = f"{run}-{event['id']}" if event["id"] else ""
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as client:
        first = client.post("/v1/events", json=events).json()
        again = client.post("/v1/events", json=events).json()
    path = Path(files.workspace.root) / f"run-{run}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    report = ingest_file(
        files.engine, files.rules, path, select_importer(path, default_importers())
    )
    expected = json.loads(report.to_json())
    assert counts(first) == counts(expected)
    assert (
        first["received"]
        == first["accepted"] + first["duplicates"] + first["conflicts"] + first["rejected"]
    )
    assert again["accepted"] == 0 and again["received"] == first["received"]
    assert len(first["rejects"]) == first["rejected"]
