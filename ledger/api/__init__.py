"""The live track: ``meterbook api``, one ASGI service (FastAPI on uvicorn) over a workspace.

    $ meterbook keys create --scope ingest --label gateway
    $ meterbook api --port 8000
    meterbook API on http://127.0.0.1:8000/ (OpenAPI: /openapi.json, portal: /portal/login)
    $ curl -s -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
        --data '[{"id":"e-1","customer":"acme","type":"api.request",
                  "time":"2026-12-04T09:00:00Z"}]' \\
        http://127.0.0.1:8000/v1/events
    {"batch": 12, "received": 1, "accepted": 1, "duplicates": 0, "conflicts": 0, "rejected": 0, ...}

One concern per module: :mod:`.keys` (hashed keys), :mod:`.intake` (a request body
through the file ingest engine), :mod:`.counters` (live totals for the dual-track
reconciler), :mod:`.portal` (a customer's figures and self-service caps),
:mod:`.app` (the routes). It binds to loopback unless ``--allow-remote``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ledger.workspace import Workspace


def check_host(host: str, *, allow_remote: bool) -> str | None:
    """None for loopback; a warning for a remote host with ``allow_remote``; else BadInput."""
    from ledger.errors import BadInput
    from ledger.serve import is_loopback

    if is_loopback(host):
        return None
    if not allow_remote:
        raise BadInput(
            f"--host {host} is not a loopback address; pass --allow-remote to serve the API "
            "there (put TLS in front of it: keys travel in headers)"
        )
    return (
        f"warning: serving the API on {host}: use TLS in front of it, keys travel in every request"
    )


def serve(
    workspace: Workspace,
    host: str,
    port: int,
    *,
    max_body: int,
    workers: int = 1,
    log_level: str = "warning",
    lock_wait: float = 5.0,
) -> None:
    """Run the API with uvicorn until interrupted (``workers`` processes sharing the port)."""
    import os

    import uvicorn

    from ledger.api.guard import HeaderDeadline

    options = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "limit_concurrency": 256,
        "timeout_keep_alive": 30,
        "http": HeaderDeadline,
    }
    if workers > 1:  # each worker process opens the workspace itself
        os.environ["METERBOOK_API_WORKSPACE"] = str(workspace.root)
        os.environ["METERBOOK_API_MAX_BODY"] = str(max_body)
        os.environ["METERBOOK_API_LOCK_WAIT"] = str(lock_wait)
        uvicorn.run(
            "ledger.api.app:from_environment",
            factory=True,
            workers=workers,
            **options,  # type: ignore[arg-type]
        )
        return
    from ledger.api.app import Service, create_app

    app = create_app(Service.open(workspace, max_body=max_body, lock_wait=lock_wait))
    uvicorn.run(app, **options)  # type: ignore[arg-type]
