"""The workspace: a directory with ``meterbook.toml``.

A worked example::

    # meterbook.toml
    books = "books"
    rules = "rules"
    store = "sqlite:///var/events.sqlite"   # relative sqlite paths: relative to the workspace
    timezone = "UTC"
    operating_currency = "USD"
    plugins_dir = ""
    title = "meterbook"                      # the books' title in Fava
    books_detail = "customer"                # or "summary": control accounts instead

    [documents]
    templates = "templates"                  # optional: the workspace's own document templates
    pdf = false                              # true: a PDF next to every document (WeasyPrint)

    [seller]                                 # optional: who issues the invoices
    name = "Example Billing Ltd"
    address = ["1 High Street", "London EC1A 1AA", "United Kingdom"]
    email = "billing@example.com"

    [payment]                                # optional: how to pay, printed on every invoice
    instructions = "Bank transfer, quoting the invoice number as the reference."
    [payment.details]
    "Account name" = "Example Billing Ltd"
    IBAN = "GB82 WEST 1234 5698 7654 32"

``Workspace.find(Path.cwd())`` walks up to the first directory holding that file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.errors import WorkspaceError
from ledger.rules import is_http_url

if TYPE_CHECKING:
    from ledger.rules import ChangePolicy, GapsSpikesTuning

CONFIG_NAME = "meterbook.toml"
_KEYS = {
    "books",
    "rules",
    "store",
    "timezone",
    "operating_currency",
    "plugins_dir",
    "alerts",
    "title",
    "tax",
    "gaps_spikes",
    "documents",
    "seller",
    "payment",
    "subscription_changes",
    "books_detail",
}
#: ``books_detail``: ``customer`` (one transaction per customer, cycle and event: the default) or
#: ``summary`` (control accounts, one transaction per kind and day: :mod:`ledger.journal.summary`)
BOOKS_DETAILS = ("customer", "summary")


@dataclass(frozen=True)
class AlertsConfig:
    """``[alerts]`` in ``meterbook.toml``: where alert notifications go (see :mod:`ledger.alerts`)::

        [alerts]
        webhook_url = "https://hooks.example.com/meterbook"   # "" (default): no webhook
        outbox = "var/alerts-outbox.jsonl"  # undeliverable alerts, one JSON object a line
        attempts = 3                        # POSTs per alert before the outbox
        timeout_seconds = 5                 # per POST
        backoff_seconds = 0.5               # wait before retry n: backoff × 2^(n-1)
        max_wait_seconds = 30               # a longer Retry-After defers delivery to a later run
        webhook_secrets = "secrets/webhooks.toml"  # or a table {URL = "whsec_…"}: Standard Webhooks

    ``webhook_secrets`` gives each endpoint URL its signing secret (``whsec_`` + base64 of 24
    to 64 bytes), inline as ``[alerts.webhook_secrets]`` or in the TOML file it names (relative
    to the workspace, kept out of the books, the rules and the store); a URL without a secret
    gets unsigned POSTs.
    """

    webhook_url: str = ""
    outbox: Path = Path("var/alerts-outbox.jsonl")
    attempts: int = 3
    timeout_seconds: float = 5.0
    backoff_seconds: float = 0.5
    max_wait_seconds: float = 30.0
    webhook_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    def secret_for(self, url: str) -> str:
        """The signing secret of an endpoint, or "" (unsigned)."""
        return self.webhook_secrets.get(url, "")

    @classmethod
    def parse(cls, value: object, path: Path, root: Path) -> AlertsConfig:
        """Validate the ``[alerts]`` table; errors name the file and key."""
        if not isinstance(value, dict):
            raise WorkspaceError(f"{path}: alerts: expected a table [alerts]")
        known = {
            "webhook_url",
            "outbox",
            "attempts",
            "timeout_seconds",
            "backoff_seconds",
            "max_wait_seconds",
            "webhook_secrets",
        }
        unknown = sorted(set(value) - known)
        if unknown:
            raise WorkspaceError(
                f"{path}: alerts.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})"
            )
        url = value.get("webhook_url", "")
        if not isinstance(url, str) or (url and not is_http_url(url)):
            raise WorkspaceError(
                f'{path}: alerts.webhook_url: expected an http:// or https:// URL or ""'
            )
        outbox = value.get("outbox", str(cls.outbox))
        if not isinstance(outbox, str) or not outbox:
            raise WorkspaceError(f"{path}: alerts.outbox: expected a file path string")
        # checked where it will be used: a webhook is configured or the outbox is named
        problem = outbox_problem(root / outbox) if url or "outbox" in value else ""
        if problem:
            raise WorkspaceError(f"{path}: alerts.outbox: {problem}")
        attempts = value.get("attempts", cls.attempts)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 10:
            raise WorkspaceError(f"{path}: alerts.attempts: expected a whole number from 1 to 10")
        seconds = {}
        for key, zero_ok in (("timeout_seconds", False), ("backoff_seconds", True)):
            number = value.get(key, getattr(cls, key))
            if (
                isinstance(number, bool)
                or not isinstance(number, int | float)
                or not (number >= 0 if zero_ok else number > 0)
                or number > 60
            ):
                raise WorkspaceError(
                    f"{path}: alerts.{key}: expected a number of seconds "
                    f"{'from' if zero_ok else 'above'} 0 up to 60"
                )
            seconds[key] = float(number)
        wait = value.get("max_wait_seconds", cls.max_wait_seconds)
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= 300:
            raise WorkspaceError(
                f"{path}: alerts.max_wait_seconds: expected a number of seconds from 0 up to 300"
            )
        secrets = webhook_secrets(value.get("webhook_secrets", {}), path, root)
        return cls(
            webhook_url=url,
            outbox=root / outbox,
            attempts=attempts,
            max_wait_seconds=float(wait),
            webhook_secrets=secrets,
            **seconds,
        )


def webhook_secrets(value: object, path: Path, root: Path) -> dict[str, str]:
    """``alerts.webhook_secrets``: a table of endpoint URL to ``whsec_`` secret, or the name of a
    TOML file holding that table. Errors name the file and the URL, never the secret."""
    import base64
    import binascii

    where = f"{path}: alerts.webhook_secrets"
    if isinstance(value, str):
        source = root / value
        try:
            table: object = tomllib.loads(source.read_text(encoding="utf-8"))
        except OSError as exc:
            raise WorkspaceError(f"{where}: cannot read {source}: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise WorkspaceError(f"{source}: not TOML: {exc}") from None
        where = str(source)
    else:
        table = value
    if not isinstance(table, dict):
        raise WorkspaceError(
            f'{where}: expected a table of endpoint URL = "whsec_…" or a file name'
        )
    secrets: dict[str, str] = {}
    for url, secret in table.items():
        if not is_http_url(url):
            raise WorkspaceError(f"{where}: {url!r}: expected an http:// or https:// endpoint URL")
        try:
            key = (
                base64.b64decode(secret.removeprefix("whsec_"), validate=True)
                if isinstance(secret, str) and secret.startswith("whsec_")
                else b""
            )
        except (binascii.Error, ValueError):
            key = b""
        if not 24 <= len(key) <= 64:
            raise WorkspaceError(
                f'{where}: {url}: expected a secret "whsec_<base64 of 24 to 64 bytes>" '
                "(Standard Webhooks)"
            )
        secrets[url] = secret
    return secrets


def outbox_problem(outbox: Path) -> str:
    """Why alerts could never be appended to ``outbox``, or "" (checked when the config loads,
    not when the first alert is undeliverable). A file still to be created is fine.

    >>> outbox_problem(Path("/")), outbox_problem(Path("/dev/null/outbox.jsonl"))
    ('/ is a directory, not a file', '/dev/null is not a directory')
    """
    import os

    if outbox.is_dir():
        return f"{outbox} is a directory, not a file"
    for folder in outbox.parents:
        if folder.exists():
            if not folder.is_dir():
                return f"{folder} is not a directory"
            if not outbox.exists() and not os.access(folder, os.W_OK | os.X_OK):
                return f"{folder} is not writable"
            break
    if outbox.exists() and not os.access(outbox, os.W_OK):
        return f"{outbox} is not writable"
    return ""


def gaps_spikes_tuning(value: object, path: Path) -> GapsSpikesTuning:
    """Validate ``[gaps_spikes]``; an error names the file and key::

    meterbook.toml: gaps_spikes.min_gap_days: Input should be greater than or equal to 1
    """
    from pydantic import ValidationError

    from ledger.rules import GapsSpikesTuning

    if not isinstance(value, dict):
        raise WorkspaceError(f"{path}: gaps_spikes: expected a table [gaps_spikes]")
    try:
        return GapsSpikesTuning.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(
            str(p) for p in err["loc"] if p not in ("function-before", "function-after")
        )
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        raise WorkspaceError(f"{path}: gaps_spikes.{where}: {message}") from None


@dataclass(frozen=True)
class DocumentsConfig:
    """``[documents]`` in ``meterbook.toml``::

        [documents]
        templates = "templates"   # templates/invoice.html replaces the packaged invoice.html
        pdf = true                # a PDF next to each document (pip install 'meterbook[pdf]')

    ``templates``: a directory relative to the workspace (None: the packaged templates).
    """

    templates: Path | None = None
    pdf: bool = False

    @classmethod
    def parse(cls, value: object, path: Path, root: Path) -> DocumentsConfig:
        if not isinstance(value, dict):
            raise WorkspaceError(f"{path}: documents: expected a table [documents]")
        unknown = sorted(set(value) - {"templates", "pdf"})
        if unknown:
            raise WorkspaceError(
                f"{path}: documents.{unknown[0]}: unknown key (known: pdf, templates)"
            )
        pdf = value.get("pdf", False)
        if not isinstance(pdf, bool):
            raise WorkspaceError(f"{path}: documents.pdf: expected true or false")
        if "templates" not in value:
            return cls(pdf=pdf)
        name = value["templates"]
        if not isinstance(name, str) or not name.strip():
            raise WorkspaceError(
                f"{path}: documents.templates: expected the path of a directory, relative to the "
                "workspace"
            )
        directory = root / name
        if not directory.is_dir():
            what = "is not a directory" if directory.exists() else "does not exist"
            raise WorkspaceError(f"{path}: documents.templates: {directory} {what}")
        return cls(templates=directory.resolve(), pdf=pdf)


@dataclass(frozen=True)
class SellerConfig:
    """``[seller]``: who issues the documents, printed at the top of each (the tax id is
    ``[tax] seller_tax_id``)::

        [seller]
        name = "Example Billing Ltd"
        address = ["1 High Street", "London EC1A 1AA", "United Kingdom"]
        email = "billing@example.com"
        phone = "+44 20 7946 0000"
    """

    name: str = ""
    address: tuple[str, ...] = ()
    email: str = ""
    phone: str = ""

    @classmethod
    def parse(cls, value: object, path: Path) -> SellerConfig:
        table = _table(value, path, "seller", ("address", "email", "name", "phone"))
        return cls(
            name=_text(table, path, "seller", "name"),
            address=_lines(table, path, "seller", "address"),
            email=_text(table, path, "seller", "email"),
            phone=_text(table, path, "seller", "phone"),
        )


@dataclass(frozen=True)
class PaymentConfig:
    """``[payment]``: how to pay an invoice, printed on every invoice with its number as the
    payment reference. ``details`` are printed in the order written::

        [payment]
        instructions = "Bank transfer, quoting the invoice number as the reference."
        [payment.details]
        "Account name" = "Example Billing Ltd"
        IBAN = "GB82 WEST 1234 5698 7654 32"
        BIC = "WESTGB2L"
    """

    instructions: str = ""
    details: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: object, path: Path) -> PaymentConfig:
        table = _table(value, path, "payment", ("details", "instructions"))
        details = table.get("details", {})
        if not isinstance(details, dict):
            raise WorkspaceError(
                f'{path}: payment.details: expected a table such as [payment.details] IBAN = "…"'
            )
        for key, text in details.items():
            if not isinstance(text, str) or not text.strip():
                raise WorkspaceError(f"{path}: payment.details.{key}: expected a non-empty string")
        return cls(
            instructions=_text(table, path, "payment", "instructions"),
            details=tuple((str(k), v) for k, v in details.items()),
        )


def _table(value: object, path: Path, name: str, known: tuple[str, ...]) -> dict[str, object]:
    if not isinstance(value, dict):
        raise WorkspaceError(f"{path}: {name}: expected a table [{name}]")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise WorkspaceError(
            f"{path}: {name}.{unknown[0]}: unknown key (known: {', '.join(known)})"
        )
    return value


def _text(table: dict[str, object], path: Path, name: str, key: str) -> str:
    text = table.get(key, "")
    if not isinstance(text, str):
        raise WorkspaceError(f"{path}: {name}.{key}: expected a string")
    return text.strip()


def _lines(table: dict[str, object], path: Path, name: str, key: str) -> tuple[str, ...]:
    lines = table.get(key, [])
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise WorkspaceError(
            f'{path}: {name}.{key}: expected a list of lines, such as ["1 High Street", "London"]'
        )
    return tuple(line.strip() for line in lines if line.strip())


def change_policy(value: object, path: Path) -> ChangePolicy | None:
    """Validate ``[subscription_changes]``, the workspace's default subscription-change policy
    (None when absent); an error names the file and key::

    meterbook.toml: subscription_changes.proration: expected 'by_day' or 'none', got 'daily'
    """
    from ledger.rules import ChangePolicy

    if value is None:
        return None
    if not isinstance(value, dict):
        raise WorkspaceError(
            f"{path}: subscription_changes: expected a table [subscription_changes]"
        )
    allowed = {"proration": ("by_day", "none"), "effective": ("now", "next_cycle")}
    for key, given in value.items():
        if key not in allowed:
            raise WorkspaceError(
                f"{path}: subscription_changes.{key}: unknown key (known: proration, effective)"
            )
        if given not in allowed[key]:
            raise WorkspaceError(
                f"{path}: subscription_changes.{key}: expected "
                f"{' or '.join(repr(v) for v in allowed[key])}, got {given!r}"
            )
    return ChangePolicy.model_validate(value)


@dataclass(frozen=True)
class Workspace:
    """A loaded ``meterbook.toml`` with its paths resolved."""

    root: Path
    books_dir: Path
    rules_dir: Path
    store_url: str
    timezone: str
    operating_currency: str
    plugins_dir: Path | None
    alerts: AlertsConfig = AlertsConfig()
    #: The books' title (Fava shows it). Part of the config, not the directory name,
    #: so the same workspace gives the same books wherever it is checked out.
    title: str = "meterbook"
    #: ``[gaps_spikes]``: the workspace's tuning of the gaps-and-spikes reconciler
    #: (:class:`ledger.rules.GapsSpikesTuning`; None: its defaults)
    gaps_spikes: GapsSpikesTuning | None = None
    #: ``[documents]``: the workspace's own document templates, each replacing the packaged
    #: one of the same name (:mod:`ledger.documents`), and whether PDFs are written
    documents: DocumentsConfig = DocumentsConfig()
    #: ``[seller]`` and ``[payment]``: printed on the documents
    seller: SellerConfig = SellerConfig()
    payment: PaymentConfig = PaymentConfig()
    #: ``[subscription_changes]``: the workspace's default subscription-change policy, which a
    #: customer's own ``subscription_changes`` overrides key by key (None: the built-in one)
    subscription_changes: ChangePolicy | None = None
    #: ``books_detail``: ``"customer"`` (per-customer accounts and entries) or ``"summary"``
    #: (control accounts; the per-customer detail stays in the store and the documents)
    books_detail: str = "customer"

    @property
    def summary_books(self) -> bool:
        """True when ``books_detail = "summary"``: the books hold control accounts."""
        return self.books_detail == "summary"

    @property
    def templates_dir(self) -> Path | None:
        """``[documents] templates``, resolved; None: the packaged templates."""
        return self.documents.templates

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def main_file(self) -> Path:
        return self.books_dir / "main.beancount"

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_NAME

    @classmethod
    def find(cls, start: Path) -> Workspace:
        """Walk up from ``start`` to the first directory with ``meterbook.toml``."""
        start = start.resolve()
        for directory in (start, *start.parents):
            if (directory / CONFIG_NAME).exists():  # a folder of that name is reported by load
                return cls.load(directory)
        raise WorkspaceError(
            f"no {CONFIG_NAME} in {start} or any parent; run 'meterbook init DIR' "
            "or pass --workspace DIR"
        )

    @classmethod
    def load(cls, root: Path) -> Workspace:
        """Load ``root/meterbook.toml``; every error names the file and key."""
        root = root.resolve()
        path = root / CONFIG_NAME
        if path.is_dir():
            raise WorkspaceError(f"{path}: is a directory, not the workspace's configuration file")
        if not path.is_file():
            what = "not found" if not path.exists() else "not a regular file"
            raise WorkspaceError(f"{path}: {what}; run 'meterbook init {root}'")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise WorkspaceError(f"{path}: {exc}") from None
        except OSError as exc:
            raise WorkspaceError(f"{path}: cannot read: {exc.strerror or exc}") from None
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise WorkspaceError(
                f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})"
            )
        for key, value in data.items():
            # tables: [alerts], [tax] (read by ledger.tax), [gaps_spikes], [documents], [seller],
            # [payment], [subscription_changes]
            if not isinstance(value, str) and key not in (
                "alerts",
                "tax",
                "gaps_spikes",
                "documents",
                "seller",
                "payment",
                "subscription_changes",
            ):
                raise WorkspaceError(
                    f"{path}: {key}: expected a string, got {type(value).__name__}"
                )
        timezone = data.get("timezone", "UTC")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise WorkspaceError(f"{path}: timezone: unknown time zone {timezone!r}") from None
        currency = data.get("operating_currency", "USD")
        if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
            raise WorkspaceError(
                f"{path}: operating_currency: {currency!r} is not an ISO 4217 code"
            )
        plugins_dir = data.get("plugins_dir", "")
        detail = data.get("books_detail", "customer")
        if detail not in BOOKS_DETAILS:
            raise WorkspaceError(
                f"{path}: books_detail: expected 'customer' or 'summary', got {detail!r}"
            )
        return cls(
            root=root,
            books_dir=root / data.get("books", "books"),
            rules_dir=root / data.get("rules", "rules"),
            store_url=resolve_store_url(data.get("store", "sqlite:///var/events.sqlite"), root),
            timezone=timezone,
            operating_currency=currency,
            plugins_dir=(root / plugins_dir) if plugins_dir else None,
            alerts=AlertsConfig.parse(data.get("alerts", {}), path, root),
            title=data.get("title", "meterbook") or "meterbook",
            gaps_spikes=gaps_spikes_tuning(data.get("gaps_spikes", {}), path),
            documents=DocumentsConfig.parse(data.get("documents", {}), path, root),
            seller=SellerConfig.parse(data.get("seller", {}), path),
            payment=PaymentConfig.parse(data.get("payment", {}), path),
            subscription_changes=change_policy(data.get("subscription_changes"), path),
            books_detail=detail,
        )


def resolve_store_url(url: str, root: Path) -> str:
    """Make a relative ``sqlite:///path`` absolute against the workspace root."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix) :]
        if rest and rest != ":memory:" and not Path(rest).is_absolute():
            return prefix + str((root / rest).resolve())
    return url
