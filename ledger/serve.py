"""``meterbook serve``: Fava on the books, read-only, on loopback unless told otherwise.

    $ meterbook serve
    Fava on http://127.0.0.1:5000/ (read-only): books/main.beancount

Fava's ``read_only`` mode answers every request that is not a GET with 401,
so nothing can be edited through the browser. Fava has no authentication:
anyone who can reach the port can read the books, so a host that is not a
loopback address is refused unless ``--allow-remote`` is given, and then a
warning is printed::

    >>> check_host("127.0.0.1", allow_remote=False) is None
    True
    >>> check_host("0.0.0.0", allow_remote=False)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    ledger.errors.BadInput: --host 0.0.0.0 is not a loopback address: Fava has no
        authentication, anyone who can reach it reads the books; pass --allow-remote to serve
        it anyway
    >>> check_host("0.0.0.0", allow_remote=True)[:36]
    'warning: serving the books on 0.0.0.'
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.errors import BadInput

if TYPE_CHECKING:
    from cheroot.wsgi import Server
    from flask import Flask

    from ledger.workspace import Workspace

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any loopback address (127.0.0.0/8, ::1)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_address(host: str) -> str:
    """The address to bind for ``--host``: an IPv6 literal without the brackets a URL
    puts around it (``[::1]`` binds ``::1``); anything else as given.

    >>> bind_address("[::1]"), bind_address("::1"), bind_address("127.0.0.1")
    ('::1', '::1', '127.0.0.1')
    """
    inner = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.IPv6Address(inner))
    except ValueError:
        return host


def url_host(host: str) -> str:
    """``host`` as it goes in a URL: an IPv6 address in brackets.

    >>> url_host("::1"), url_host("[::1]"), url_host("localhost")
    ('[::1]', '[::1]', 'localhost')
    """
    address = bind_address(host)
    return f"[{address}]" if ":" in address else address


def check_host(host: str, *, allow_remote: bool) -> str | None:
    """None for a loopback host; a warning to print if a remote one is allowed; else BadInput."""
    if is_loopback(host):
        return None
    if not allow_remote:
        raise BadInput(
            f"--host {host} is not a loopback address: Fava has no authentication, anyone who can "
            "reach it reads the books; pass --allow-remote to serve it anyway"
        )
    return (
        f"warning: serving the books on {host}: Fava has no authentication, "
        "anyone who can reach this address can read every entry, customer and amount (read-only)"
    )


def main_file(workspace: Workspace) -> Path:
    """``books/main.beancount``, or BadInput when the books were never written."""
    path = workspace.main_file
    if not path.is_file():
        raise BadInput(f"{path} does not exist: run 'meterbook post' first")
    return path


def declares_extension(path: Path) -> bool:
    """Whether ``main.beancount`` declares the meterbook pages."""
    from ledger.fava_ext import EXTENSION_MODULE

    return f'custom "fava-extension" "{EXTENSION_MODULE}"' in path.read_text(encoding="utf-8")


def create_app(path: Path) -> Flask:
    """Fava's WSGI app on ``path``, read-only, the ledger loaded now (errors show at start)."""
    from fava.application import create_app as fava_app

    return fava_app([path], load=True, read_only=True)


def make_server(app: Flask, host: str, port: int) -> Server:
    """The WSGI server Fava itself uses (cheroot), bound on ``host:port``."""
    from cheroot.wsgi import Server

    return Server((host, port), app)
