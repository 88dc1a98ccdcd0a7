"""The meterbook pages in Fava, through ``create_app`` and Flask's test client.

The workspace (:func:`tests.support.fava.build_workspace`), every number computed by hand:

- plan ``u``: api_calls at 1.00 a call, tokens at 0.01 a token; calendar cycles;
- acme ("Acme Corp"): 100 calls and 1,000 tokens in September (110.00, invoiced Oct 1 as
  INV-2026-000002 and paid Oct 10), 30 calls in October (30.00 unbilled);
  caps: 150 calls, spend 200.00;
- beta ("Beta & Sons <Ltd>", a name to escape): a 60.00 prepaid credit granted
  Sep 1 (invoiced Sep 1 as INV-2026-000001, paid Oct 5); 50 calls in September
  (50.00, all drawn from the credit, so its Oct 1 invoice INV-2026-000003 is
  0.00) and 4 calls in October (4.00 drawn): 6.00 of credit left;
- September is closed with the planted finding ``planted:beta:2026-09``
  accepted; October is open.

Revenue by month (USD):

=======  ==========  ========  ========  ========  ==========
month    recognized  invoiced  unbilled  deferred  receivable
=======  ==========  ========  ========  ========  ==========
2026-09  160.00      60.00     110.00    10.00     60.00
2026-10  34.00       110.00    30.00     6.00      0.00
=======  ==========  ========  ========  ========  ==========

(Sep deferred: 60.00 credited by the credit's invoice − 50.00 drawn; Oct: − 4.00.)
Over both months: recognized 194.00 (acme 140.00 + beta 54.00), invoiced 170.00.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html import unescape as html_unescape
from pathlib import Path
from shlex import split as shlex_split
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from ledger import books, serve
from ledger.cli import cli
from ledger.errors import BadInput
from ledger.fava_ext import MeterbookClose, MeterbookReports, money
from ledger.fava_ext.figures import revenue_by_month
from ledger.fava_ext.markup import close_report_html
from ledger.session import Session
from ledger.workspace import Workspace
from tests.support.fava import ACCEPTED_REASON, build_workspace


@pytest.fixture(scope="module")
def workspace_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_workspace(tmp_path_factory.mktemp("fava") / "ws")


@dataclass
class Fava:
    app: Flask
    client: FlaskClient
    slug: str

    def page(self, name: str, query: str = "") -> str:
        response = self.client.get(f"/{self.slug}/extension/{name}/{query}")
        assert response.status_code == 200, response.get_data(as_text=True)[-2000:]
        text = response.get_data(as_text=True)
        return text[text.index("<article>") :]


@pytest.fixture(scope="module")
def fava(workspace_root: Path) -> Iterator[Fava]:
    app = serve.create_app(workspace_root / "books" / "main.beancount")
    client = app.test_client()
    location = client.get("/").headers["Location"]
    yield Fava(app, client, location.strip("/").split("/")[0])


def cells(html: str, row_start: str) -> list[str]:
    """The cells' text of the table row whose first cell (or id) starts ``row_start``."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, flags=re.S):
        texts = [
            " ".join(re.sub(r"<[^>]+>", "", re.sub(r"<br>|</li>|</small>", " ", c)).split())
            for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        if texts and texts[0].startswith(row_start):
            return texts
    raise AssertionError(f"no row {row_start!r}")


def test_books_declare_the_extension_and_load_cleanly(workspace_root: Path) -> None:
    main = workspace_root / "books" / "main.beancount"
    assert serve.declares_extension(main)
    _entries, errors, _options = books.load_books(main)
    assert errors == []


def test_books_show_income_and_liabilities_positive_in_fava(
    workspace_root: Path, fava: Fava
) -> None:
    """main.beancount sets Fava's ``invert-income-liabilities-equity`` option (finance reads
    revenue positive; the journal keeps Beancount's signs); the line is presentation, outside
    every seal, so September stays sealed and verified with it."""
    main = (workspace_root / "books" / "main.beancount").read_text()
    assert '2000-01-01 custom "fava-option" "invert-income-liabilities-equity" "true"\n' in main
    ledger = fava.app.config["LEDGERS"][fava.slug]
    assert ledger.fava_options.invert_income_liabilities_equity is True
    assert cells(fava.page("MeterbookClose"), "2026-09")[1] == "sealed, verified"


def test_fava_loads_the_pages_without_errors(fava: Fava) -> None:
    errors = fava.client.get(f"/{fava.slug}/api/errors").get_json()["data"]
    assert errors == []
    ledger_data = fava.client.get(f"/{fava.slug}/api/ledger_data").get_json()["data"]
    titles = {e["name"]: e["report_title"] for e in ledger_data["extensions"]}
    assert titles == {
        "MeterbookClose": "Close",
        "MeterbookCustomers": "Customers",
        "MeterbookEvidence": "Evidence",
        "MeterbookReports": "Reports",
        "MeterbookRevenue": "Revenue",
    }


def components(html: str, kind: str) -> list[Any]:
    """The JSON data of each of Fava's ``<svelte-component type="kind">`` elements on a page."""
    found = re.findall(
        rf'<svelte-component type="{kind}"><script type="application/json">(.*?)</script>',
        html,
        re.S,
    )
    return [json.loads(text, parse_float=Decimal) for text in found]


def test_revenue_page(fava: Fava) -> None:
    """Fava's own components: its chart switcher and its query table (Fava formats the numbers)."""
    html = fava.page("MeterbookRevenue")
    [table] = components(html, "query-table")
    assert [c["name"] for c in table["types"]] == [
        "month",
        "recognized",
        "invoiced",
        "unbilled (end)",
        "deferred (end)",
        "receivable (end)",
    ]
    assert {c["dtype"] for c in table["types"][1:]} == {"Amount"}
    shown = {row[0]: [(a["number"], a["currency"]) for a in row[1:]] for row in table["rows"]}
    usd = [(Decimal(n), "USD") for n in ("160.00", "60.00", "110.00", "10.00", "60.00")]
    assert shown["2026-09"] == usd
    assert shown["2026-10"] == [
        (Decimal(n), "USD") for n in ("34.00", "110.00", "30.00", "6.00", "0.00")
    ]
    [charts] = components(html, "charts")
    assert [(c["type"], c["label"]) for c in charts] == [
        ("bar", "recognized"),
        ("bar", "invoiced"),
        ("balances", "unbilled (end)"),
        ("balances", "deferred (end)"),
        ("balances", "receivable (end)"),
    ]
    assert [(d["date"], d["balance"]) for d in charts[0]["data"]] == [
        ("2026-08-31", {"USD": 0}),
        ("2026-09-30", {"USD": Decimal("160.00")}),
        ("2026-10-31", {"USD": Decimal("34.00")}),
    ][-len(charts[0]["data"]) :]
    assert "<svg" not in html  # no chart of its own
    # the total row, bold: Sep + Oct recognized and invoiced, the balances at Oct 31
    [total] = re.findall(r'<table class="meterbook" id="revenue-total-USD">.*?</table>', html, re.S)
    assert 'class="meterbook-total"' in total
    assert cells(total, "total") == [
        "total 2026-09 to 2026-10",
        "194.00",
        "170.00",
        "30.00",
        "6.00",
        "0.00",
    ]


def test_revenue_figures_match_the_books_balances(workspace_root: Path) -> None:
    session = Session.open(Workspace.load(workspace_root))
    entries, _errors, _options = books.load_books(workspace_root / "books" / "main.beancount")
    [sep, oct_] = revenue_by_month(entries, session.rules)
    # the close file asserts the same Sep 30 balances Beancount checked
    close = books.close_path(workspace_root / "books", "2026-09").read_text()
    lines = {" ".join(line.split()) for line in close.splitlines()}
    assert "2026-10-01 balance Assets:Receivables:Unbilled:Acme 110.00 USD" in lines
    assert "2026-10-01 balance Liabilities:Deferred-Revenue:Beta -10.00 USD" in lines
    assert (sep.unbilled, sep.deferred, sep.receivable) == (
        Decimal("110.00"),
        Decimal("10.00"),
        Decimal("60.00"),
    )
    assert oct_.recognized == Decimal("34.00")


def test_customers_page(fava: Fava) -> None:
    """Customers by name (the id under it), the name opening Fava's journal of the customer's
    transactions; a bold total row per currency (194.00 = 140.00 + 54.00, spend 30 + 4)."""
    html = fava.page("MeterbookCustomers")
    assert "from the books through 2026-10-31" in html
    acme = cells(html, "Acme Corp")
    assert acme[:7] == ["Acme Corp acme", "USD", "140.00", "0.00", "30.00", "0.00", "—"]
    assert acme[7] == "2026-10-01/2026-11-01 api_calls 30 call / 150 (20.0 %) tokens 0 token"
    assert acme[8] == "30.00 / 200.00 (15.0 %)"
    beta = cells(html, "Beta")
    name = "Beta &amp; Sons &lt;Ltd&gt; beta"
    assert beta[:7] == [name, "USD", "54.00", "0.00", "0.00", "6.00", "6.00"]
    assert beta[7] == "2026-10-01/2026-11-01 api_calls 4 call tokens 0 token" and beta[8] == "4.00"
    assert "Beta & Sons <Ltd>" not in html  # escaped
    total = cells(html, "total (2 customers)")
    assert total[1:7] == ["USD", "194.00", "0.00", "30.00", "6.00", "6.00"]
    assert total[7:] == ["", "34.00"]
    assert '<tr class="meterbook-total" id="customers-total-USD">' in html

    # the name links to Fava's journal filtered on the customer: acme's entries only
    [href] = re.findall(r'<tr id="customer-acme">\s*<td><a href="([^"]+)"', html)
    assert href.startswith(f"/{fava.slug}/journal/?filter=")
    query = href.split("?", 1)[1]
    journal = fava.client.get(f"/{fava.slug}/api/journal?{query}").get_json()["data"]
    transactions = [e for e in journal if e["t"] == "Transaction"]
    assert transactions and {e["meta"]["customer"] for e in transactions} == {"acme"}
    # its September usage accrual, its invoice and its payment among them
    narrations = {e["narration"].split(" ")[0] for e in transactions}
    assert {"Invoice", "Payment"} <= narrations


def test_amounts_follow_favas_locale_option(workspace_root: Path, tmp_path: Path) -> None:
    """With Fava's ``locale`` option set to de_DE, the pages print amounts as Fava does for that
    locale (decimal comma): acme's 140.00 USD revenue reads 140,00, beta's 6.00 credit 6,00."""
    import shutil

    root = tmp_path / "ws"
    shutil.copytree(workspace_root, root)
    main = root / "books" / "main.beancount"
    main.write_text(main.read_text() + '2000-01-01 custom "fava-option" "locale" "de_DE"\n')
    app = serve.create_app(main)
    client = app.test_client()
    slug = client.get("/").headers["Location"].strip("/").split("/")[0]
    html = Fava(app, client, slug).page("MeterbookCustomers")
    assert cells(html, "Acme Corp")[:5] == ["Acme Corp acme", "USD", "140,00", "0,00", "30,00"]
    assert cells(html, "Beta")[6] == "6,00"
    assert cells(html, "total")[2] == "194,00"


def test_close_page(fava: Fava, workspace_root: Path) -> None:
    html = fava.page("MeterbookClose")
    seal_line = books.close_path(workspace_root / "books", "2026-09").read_text().splitlines()[-1]
    seal_hash = seal_line.split('"')[-2]
    september = cells(html, "2026-09")
    assert september[1] == "sealed, verified"
    assert september[2] == f"{seal_hash[:12]}…"
    assert f"planted:beta:2026-09: {ACCEPTED_REASON}" in september[4]
    assert september[5] == "2026-09.close.md"
    assert '<a href="?report=2026-09" class="close-report-link">2026-09.close.md</a>' in html
    october = cells(html, "2026-10")
    assert october[1] == "open" and october[2] == "—"
    assert "planted:beta:2026-10 error: planted discrepancy (expected 30, actual 29)" in october[3]
    assert html.index('id="close-2026-10"') < html.index('id="close-2026-09"')  # newest first

    # the Markdown source, for download; the month is validated, no other file can be read
    report = fava.client.get(f"/{fava.slug}/extension/MeterbookClose/close_report?month=2026-09")
    assert report.status_code == 200 and report.mimetype == "text/plain"
    assert (
        report.get_data(as_text=True)
        == (workspace_root / "books" / "2026" / "2026-09.close.md").read_text()
    )
    for month in ("2026-10", "../../meterbook.toml", "2026-9"):
        missing = fava.client.get(
            f"/{fava.slug}/extension/MeterbookClose/close_report?month={month}"
        )
        assert missing.status_code == 404


def test_close_report_renders_as_a_page(fava: Fava, workspace_root: Path) -> None:
    """``?report=2026-09`` renders the close report in Fava's layout: Markdown tables as HTML
    tables, the aging's ``(total)`` row and ``total`` column bold, INV-2026-000001 (beta's
    60.00 open at Sep 30) linked to its document through Fava's document route."""
    html = fava.page("MeterbookClose", "?report=2026-09")
    [report] = re.findall(
        r'<div class="meterbook-report" id="close-report">(.*?)</div>', html, re.S
    )
    assert "<h1>Close 2026-09</h1>" in report and "# Close" not in report
    assert "| month |" not in report and report.count("<table>") >= 5
    aging = report[report.index("<h3>Aging by customer</h3>") :]
    assert re.search(r'<tr class="meterbook-total">\s*<td>\(total\)</td>', aging)
    assert re.search(r'<td style="text-align:right" class="meterbook-total">60.00</td>', aging)
    [href] = set(re.findall(r'<a href="([^"]+)"[^>]*>INV-2026-000001</a>', report))
    document = fava.client.get(href)
    path = workspace_root / "books" / "documents" / "INV-2026-000001.html"
    assert document.status_code == 200 and document.get_data() == path.read_bytes()
    assert 'close_report?month=2026-09" data-remote>the Markdown source</a>' in html
    missing = fava.page("MeterbookClose", "?report=2026-10")
    assert "no close report for &#39;2026-10&#39;" in missing
    assert 'id="close-report"' not in missing


def test_close_report_html_escapes_what_a_hand_edit_adds() -> None:
    """Raw HTML is escaped, a javascript: link is not made a link, an image is not loaded (its
    address stays a plain link)."""
    html = close_report_html(
        "<script>alert(1)</script>\n\n[x](javascript:alert(1)) ![i](http://example.com/i.png)",
        {}.get,
    )
    assert "<script" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html and "<img" not in html


def test_close_page_composes_the_acceptance_command(fava: Fava) -> None:
    """The form offers the open month's unaccepted findings; each submission adds one
    ``--accept ID --reason TEXT`` pair to the command shown (quoted for the shell, escaped for
    the page). Nothing is written: Fava is read-only."""
    html = fava.page("MeterbookClose")
    [form] = re.findall(r'<form method="get" id="accept-form-2026-10">.*?</form>', html, re.S)
    assert re.findall(r'<option value="([^"]+)">', form) == ["planted:beta:2026-10"]
    assert "accept-form-2026-09" not in html  # sealed
    reason = "vendor's reset <b>"
    query = urlencode({"month": "2026-10", "accept": "planted:beta:2026-10", "reason": reason})
    shown = fava.page("MeterbookClose", f"?{query}")
    [command] = re.findall(r'<pre id="accept-command-2026-10">(.*?)</pre>', shown, re.S)
    expected = MeterbookClose.close_command("2026-10", [("planted:beta:2026-10", reason)])
    assert html_unescape(command) == expected
    assert shlex_split(expected)[-4:] == ["--accept", "planted:beta:2026-10", "--reason", reason]
    assert "<b>" not in command
    assert "accept-form-2026-10" not in shown  # every finding is in the command
    # an id that is no finding of the month, or a pair without a reason, is left out
    ignored = fava.page("MeterbookClose", "?month=2026-10&accept=x&reason=y&accept=planted")
    assert "accept-command-2026-10" not in ignored


def test_close_page_verifies_the_seal_live(workspace_root: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "ws"
    shutil.copytree(workspace_root, root)
    september = books.month_path(root / "books", "2026-09")
    september.write_text(september.read_text().replace("Usage accrual", "Usage accruals", 1))
    app = serve.create_app(root / "books" / "main.beancount")
    client = app.test_client()
    slug = client.get("/").headers["Location"].strip("/").split("/")[0]
    html = Fava(app, client, slug).page("MeterbookClose")
    row = cells(html, "2026-09")
    assert row[1] == "sealed, BROKEN"
    assert "month 2026-09 is sealed but an entry was" in row[2]


def test_pages_say_why_without_a_workspace(workspace_root: Path, tmp_path: Path) -> None:
    """Books copied away from their meterbook.toml: Fava works, the pages explain in one line."""
    import shutil

    shutil.copytree(workspace_root / "books", tmp_path / "books")
    app = serve.create_app(tmp_path / "books" / "main.beancount")
    client = app.test_client()
    fava = Fava(app, client, client.get("/").headers["Location"].strip("/").split("/")[0])
    for name in ("MeterbookRevenue", "MeterbookCustomers", "MeterbookClose"):
        html = fava.page(name)
        assert (
            '<p class="meterbook-notice">the meterbook workspace could not be opened: no '
            "meterbook.toml" in html
        )


def test_evidence_page(fava: Fava) -> None:
    html = fava.page("MeterbookEvidence")
    assert 'id="evidence-form"' in html and 'id="trace-result"' not in html
    traced = fava.page("MeterbookEvidence", "?ref=INV-2026-000002")
    assert re.search(
        r'invoice <a href="[^"]+/document/\?filename=[^"]+INV-2026-000002.html"[^>]*>'
        r'INV-2026-000002</a>:\s*<span class="meterbook-ok">verified</span>',
        traced,
    )
    assert "110.00 USD" in traced
    cycle = fava.page("MeterbookEvidence", "?ref=%5Eacme-2026-09-01")
    assert 'id="trace-result"' in cycle and "acme-2026-09-01" in cycle
    unknown = fava.page("MeterbookEvidence", "?ref=INV-2026-999999")
    assert 'class="meterbook-notice"' in unknown and "INV-2026-999999" in unknown
    hostile = fava.page("MeterbookEvidence", "?ref=%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>alert" not in hostile and "is not a cycle link" in hostile


def test_reports_page(fava: Fava) -> None:
    from ledger import reports

    html = fava.page("MeterbookReports")
    names = [
        "revenue",
        "unbilled",
        "deferred",
        "aging",
        "rollforward",
        "arpu",
        "forecast",
        "risk",
        "tax",
    ]
    assert list(reports.REPORTS) == names
    [links] = re.findall(r'<p id="report-names">(.*?)</p>', html, flags=re.S)
    assert re.findall(r'<a href="\?name=([a-z]+)">\1</a>', links) == names
    shown = fava.page("MeterbookReports", "?name=revenue&month=2026-09")
    assert 'id="report-title"' in shown
    # 100 + 50 calls at 1.00 in September; acme 100.00 + 10.00 of tokens
    assert cells(shown, "2026-09") == [
        "2026-09",
        "usage",
        "api_calls",
        "Income:Usage:Api-Calls",
        "USD",
        "150.00",
    ]
    # the customer by name, its id under it; the row's total bold
    assert re.search(
        r'<td>Acme Corp<br><small class="meterbook-id">acme</small></td><td>USD</td>'
        r'<td class="num">110.00</td>.*?<td class="num meterbook-total">110.00</td>',
        shown,
    )
    # the aging at Sep 30: INV-2026-000001 (beta's 60.00) linked to its document; the total row
    aging = fava.page("MeterbookReports", "?name=aging&month=2026-09")
    [href] = re.findall(r'<td><a href="([^"]+)"[^>]*>INV-2026-000001</a></td>', aging)
    assert fava.client.get(href).status_code == 200
    total = cells(aging, "(total)")
    assert total[:2] == ["(total)", "USD"] and total[-2:] == ["60.00", "60.00"]
    assert '<tr class="meterbook-total"><td>(total)</td>' in aging
    assert "is not YYYY-MM" in fava.page("MeterbookReports", "?name=revenue&month=2026-9")
    assert "no report named" in fava.page("MeterbookReports", "?name=nope")


def test_report_cells_are_exact(fava: Fava) -> None:
    """Cells go through Fava's number formatter with the ledger's settings, no digit dropped."""
    page = MeterbookReports(fava.app.config["LEDGERS"][fava.slug])
    assert page.cell(Decimal("1234.500")) == "1234.500"  # Fava's default: no locale, no grouping
    assert (
        page.cell(Decimal("7"), "USD") == "7.00" and page.cell(Decimal("0.125"), "USD") == "0.125"
    )
    assert page.cell(None) == "" and page.cell(date(2026, 10, 1)) == "2026-10-01"
    assert money(Decimal("0"), "JPY") == "0" and money(Decimal("7"), "EUR") == "7.00"


def test_writes_are_refused(fava: Fava, workspace_root: Path) -> None:
    base = f"/{fava.slug}"
    assert (
        fava.client.post(f"{base}/extension/MeterbookEvidence/", data={"ref": "x"}).status_code
        == 401
    )
    # Fava's source editor: GET the file and its sha256, PUT it back changed with that sha256
    october = workspace_root / "books" / "2026" / "2026-10.beancount"
    before = october.read_bytes()
    source = fava.client.get(
        f"{base}/api/source", query_string={"filename": str(october)}
    ).get_json()["data"]
    assert (
        source["sha256sum"] == hashlib.sha256(before).hexdigest()
        and source["source"] == before.decode()
    )
    put = fava.client.put(
        f"{base}/api/source",
        json={
            "file_path": str(october),
            "source": source["source"] + "\n; edited in Fava\n",
            "sha256sum": source["sha256sum"],
        },
    )
    assert put.status_code == 401
    assert october.read_bytes() == before
    assert (
        fava.client.post(f"{base}/extension/MeterbookClose/close_report?month=2026-09").status_code
        == 401
    )
    assert fava.client.delete(f"{base}/api/document?filename=x").status_code == 401
    assert fava.client.get(f"{base}/extension/MeterbookRevenue/").status_code == 200


def test_the_refused_source_edit_is_one_fava_accepts_when_writable(
    workspace_root: Path, tmp_path: Path
) -> None:
    """The control for :func:`test_writes_are_refused`: the same PUT to a writable Fava on a copy
    of the books is saved, so the refusal there is the read-only mode, not a malformed request."""
    import shutil

    from fava.application import create_app

    shutil.copytree(workspace_root, tmp_path / "ws")
    october = tmp_path / "ws" / "books" / "2026" / "2026-10.beancount"
    before = october.read_bytes()
    client = create_app(
        [tmp_path / "ws" / "books" / "main.beancount"], load=True, read_only=False
    ).test_client()
    base = "/" + client.get("/").headers["Location"].strip("/").split("/")[0]
    source = client.get(f"{base}/api/source", query_string={"filename": str(october)}).get_json()[
        "data"
    ]
    put = client.put(
        f"{base}/api/source",
        json={
            "file_path": str(october),
            "source": source["source"] + "\n; edited in Fava\n",
            "sha256sum": source["sha256sum"],
        },
    )
    assert put.status_code == 200, put.get_data(as_text=True)
    assert october.read_bytes() == before + b"\n; edited in Fava\n"


def test_serve_refuses_a_remote_host_unless_allowed(workspace_root: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--workspace", str(workspace_root), "serve", "--host", "0.0.0.0"]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "meterbook: error: --host 0.0.0.0 is not a loopback address: Fava has no authentication, "
        "anyone who can "
        "reach it reads the books; pass --allow-remote to serve it anyway"
    ]
    warning = serve.check_host("192.0.2.7", allow_remote=True)
    assert warning is not None and "Fava has no authentication" in warning
    for host in ("127.0.0.1", "127.8.0.1", "localhost", "::1", "[::1]"):
        assert serve.check_host(host, allow_remote=False) is None
    with pytest.raises(BadInput):
        serve.check_host("example.com", allow_remote=False)


def test_serve_needs_books(tmp_path: Path) -> None:
    (tmp_path / "meterbook.toml").write_text("")
    result = CliRunner().invoke(cli, ["--workspace", str(tmp_path), "serve"])
    assert result.exit_code == 2
    assert "main.beancount does not exist: run 'meterbook post' first" in result.output


@pytest.mark.parametrize(
    "name",
    [
        "ledger.fava_ext",
        "ledger.fava_ext.chart",
        "ledger.fava_ext.figures",
        "ledger.fava_ext.markup",
        "ledger.serve",
    ],
)
def test_docstring_examples(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_close_and_customers_pages_compute_once_per_load(
    workspace_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Viewing a page again does not run the reconcilers or rate again: both happen once per
    load of the books (counted by wrappers around the engine's own functions)."""
    import ledger.closing

    calls = {"reconcilers": 0, "rate": 0}
    run_reconcilers, rate = ledger.closing.run_reconcilers, Session.rate

    def counted_reconcilers(*args: Any, **kwargs: Any) -> Any:
        calls["reconcilers"] += 1
        return run_reconcilers(*args, **kwargs)

    def counted_rate(*args: Any, **kwargs: Any) -> Any:
        calls["rate"] += 1
        return rate(*args, **kwargs)

    monkeypatch.setattr(ledger.closing, "run_reconcilers", counted_reconcilers)
    monkeypatch.setattr(Session, "rate", counted_rate)
    app = serve.create_app(workspace_root / "books" / "main.beancount")
    client = app.test_client()
    page = Fava(app, client, client.get("/").headers["Location"].strip("/").split("/")[0])
    first = page.page("MeterbookClose")
    ran = calls["reconcilers"]
    assert ran == 1  # October, the one open month with entries
    assert page.page("MeterbookClose") == first and calls["reconcilers"] == ran
    customers = page.page("MeterbookCustomers")
    rated = calls["rate"]
    assert page.page("MeterbookCustomers") == customers and calls["rate"] == rated
