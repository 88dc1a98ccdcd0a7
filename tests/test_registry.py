"""The plugin registry: first-party, entry-point and workspace plugins, and the
errors naming a plugin that raises, returns nonsense or clashes with another."""

from __future__ import annotations

import json
import shutil
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger import registry as registry_module
from ledger.cli import cli
from ledger.errors import PluginError, RulesError
from ledger.plugins.graduated import GraduatedTerms
from ledger.plugins.percentage import PercentageTerms
from ledger.pricing import PricingModel, Usage
from ledger.reconcile import Finding, Reconciler
from ledger.registry import load_registry
from ledger.rules import load_rules

REPO = Path(__file__).resolve().parent.parent
FIRST_PARTY_MODELS = ["flat", "graduated", "package", "percentage", "unit", "volume"]

BLOCKS = """
import math
from dataclasses import dataclass
from decimal import Decimal

from ledger.hookspecs import hookimpl
from ledger.pricing import Price, PriceLine, check_keys, decimal_param


@dataclass(frozen=True)
class BlockTerms:
    block_price: Decimal


class BlockPricing:
    name = "per_block"

    def parse(self, params):
        check_keys(params, required=("block_price",))
        return BlockTerms(decimal_param(params, "block_price"))

    def price_is_final(self, terms):
        return True

    def bands(self, terms):
        return ()

    def price(self, terms, usage):
        blocks = Decimal(math.ceil(usage.quantity / 100))   # Decimal // truncates: use ceil
        amount = blocks * terms.block_price
        return Price(amount, (PriceLine(f"{blocks} blocks", blocks, terms.block_price, amount),))


@hookimpl
def meterbook_pricing_models():
    return [BlockPricing()]
"""


def plugin_dir(tmp_path: Path, **modules: str) -> Path:
    directory = tmp_path / "plugins"
    directory.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (directory / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return directory


def hook(body: str, name: str = "meterbook_pricing_models") -> str:
    return f"from ledger.hookspecs import hookimpl\n\n@hookimpl\ndef {name}():\n    {body}\n"


def test_first_party_plugins_use_the_hooks() -> None:
    registry = load_registry()
    assert sorted(registry.pricing_models) == FIRST_PARTY_MODELS
    for name, model in registry.pricing_models.items():
        assert isinstance(model, PricingModel)
        assert model.name == name
        assert registry.plugin(f"ledger.plugins.{name}").pricing_models == (name,)
        assert registry.plugin(f"ledger.plugins.{name}").origin == "first-party"
    events = registry.plugin("ledger.importers.events")
    assert set(events.importers) == {i.name for i in registry.importers if i.kind == "events"}
    assert "events-csv" in events.importers
    assert registry.plugin("ledger.importers.payments").importers == ("payments-csv",)
    provided = sorted(n for info in registry.plugins for n in info.reconcilers)
    assert provided == sorted(r.name for r in registry.reconcilers)


def test_demo_plans_validate_with_the_registry() -> None:
    registry = load_registry()
    rules = load_rules(REPO / "rules", registry.pricing_models)
    pro = rules.plans["pro"].charges[0]
    assert isinstance(pro.terms, GraduatedTerms)
    assert registry.pricing_models["graduated"].price(
        pro.terms, Usage(Decimal(25000))
    ).amount == Decimal("15")
    payments = rules.plans["payments"].charges[0]
    assert isinstance(payments.terms, PercentageTerms)
    assert payments.terms.per_event_max == Decimal("25.00")
    for plan in rules.plans.values():
        for charge in plan.charges:
            assert charge.terms is not None


def test_bad_charge_names_file_plan_charge_and_key(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules_dir)
    plans = rules_dir / "plans.yaml"
    plans.write_text(
        plans.read_text().replace(
            '{up_to: 1000000, unit_price: "0.0010"}', '{up_to: 1000, unit_price: "0.0010"}'
        )
    )
    with pytest.raises(RulesError) as info:
        load_rules(rules_dir, load_registry().pricing_models)
    assert str(info.value).startswith("rules/plans.yaml:")
    assert (
        "plans.pro.charges[0]: graduated: tiers[1].up_to: 1000 must be greater than the "
        "previous tier's up_to 10000"
    ) in str(info.value)


def test_workspace_plugin_adds_a_usable_model(tmp_path: Path) -> None:
    registry = load_registry(plugin_dir(tmp_path, blocks=BLOCKS))
    assert "per_block" in registry.pricing_models
    info = registry.plugin("meterbook_local.blocks")
    assert info.pricing_models == ("per_block",)
    assert info.origin.startswith("workspace ")

    rules_dir = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules_dir)
    plans = rules_dir / "plans.yaml"
    plans.write_text(
        plans.read_text()
        + (
            "  blocks:\n"
            "    currency: USD\n"
            "    charges:\n"
            "      - meter: api_calls\n"
            "        model: per_block\n"
            '        block_price: "2.00"\n'
        )
    )
    rules = load_rules(rules_dir, registry.pricing_models)
    charge = rules.plans["blocks"].charges[0]
    assert registry.pricing_models["per_block"].price(
        charge.terms, Usage(Decimal(250))
    ).amount == Decimal(6)

    plans.write_text(plans.read_text().replace('block_price: "2.00"', "block_price: 2.0"))
    with pytest.raises(
        RulesError, match=r"blocks\.charges\[0\]: per_block: block_price: .*got a float"
    ):
        load_rules(rules_dir, registry.pricing_models)
    # without the plugin the model is unknown, and the message lists the known ones
    with pytest.raises(
        RulesError, match="unknown pricing model 'per_block' \\(known: flat, graduated"
    ):
        load_rules(rules_dir, load_registry().pricing_models)


def test_workspace_package_plugin(tmp_path: Path) -> None:
    package = tmp_path / "plugins" / "blockpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from .impl import meterbook_pricing_models\n")
    (package / "impl.py").write_text(BLOCKS)
    registry = load_registry(tmp_path / "plugins")
    assert registry.plugin("meterbook_local.blockpkg").pricing_models == ("per_block",)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            hook('raise RuntimeError("database down")'),
            "plugin meterbook_local.bad: meterbook_pricing_models() raised RuntimeError: "
            "database down",
        ),
        (
            hook("return None"),
            "plugin meterbook_local.bad: meterbook_pricing_models() must return a list, got None",
        ),
        (
            hook('return {"unit": 1}'),
            "plugin meterbook_local.bad: meterbook_pricing_models() must return a list, got dict",
        ),
        (
            hook("return [object()]"),
            "plugin meterbook_local.bad: meterbook_pricing_models()[0]: object",
        ),
        (hook('return ["graduated"]'), "has no 'name' string"),
        (
            "from ledger.hookspecs import hookimpl\nfrom ledger.plugins.unit import UnitPricing\n"
            "@hookimpl\ndef meterbook_pricing_models():\n    return [UnitPricing]\n",
            "meterbook_pricing_models()[0]: got the class UnitPricing, expected an instance "
            "(UnitPricing())",
        ),
        (
            "from ledger.hookspecs import hookimpl\nclass Half:\n    name = 'half'\n"
            "    def parse(self, p): return p\n"
            "@hookimpl\ndef meterbook_pricing_models():\n    return [Half()]\n",
            "plugin meterbook_local.bad: meterbook_pricing_models()[0]: 'half' (Half) lacks "
            "price_is_final, bands, price",
        ),
        (
            "from ledger.hookspecs import hookimpl\nclass R:\n    name = 'r'\n"
            "@hookimpl\ndef meterbook_reconcilers():\n    return [R()]\n",
            "plugin meterbook_local.bad: meterbook_reconcilers()[0]: 'r' (R) lacks check",
        ),
        (
            "from ledger.hookspecs import hookimpl\nclass I:\n    name = 'i'\n"
            "    def identify(self, f): return False\n"
            "@hookimpl\ndef meterbook_importers():\n    return [I()]\n",
            "plugin meterbook_local.bad: meterbook_importers()[0]: I is not a beangulp.Importer",
        ),
        ("import no_such_dependency_xyz\n", "plugin meterbook_local.bad ("),
        (
            "from ledger.hookspecs import hookimpl\n@hookimpl\ndef meterbook_pricing_model():\n"
            "    return []\n",
            "plugin meterbook_local.bad: unknown hook 'meterbook_pricing_model' (hooks: "
            "meterbook_alert, ",
        ),
        (
            "from ledger.hookspecs import hookimpl\n@hookimpl\n"
            "def meterbook_pricing_models(workspace):\n    return []\n",
            "plugin meterbook_local.bad: ",
        ),
    ],
)
def test_bad_plugin_is_named(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(PluginError) as info:
        load_registry(plugin_dir(tmp_path, bad=source))
    assert message in str(info.value)
    assert "meterbook_local.bad" in str(info.value)


def test_duplicate_model_names_name_both_plugins(tmp_path: Path) -> None:
    with pytest.raises(PluginError) as info:
        load_registry(plugin_dir(tmp_path, a_blocks=BLOCKS, b_blocks=BLOCKS))
    assert str(info.value) == (
        "plugin meterbook_local.b_blocks: meterbook_pricing_models() provides "
        "'per_block', already provided by plugin meterbook_local.a_blocks"
    )
    (tmp_path / "plugins" / "b_blocks.py").unlink()
    shadow = "from ledger.plugins.unit import UnitPricing\n" + hook("return [UnitPricing()]")
    with pytest.raises(
        PluginError, match=r"provides 'unit', already provided by plugin ledger\.plugins\.unit"
    ):
        load_registry(plugin_dir(tmp_path, shadow=shadow))


def test_missing_plugins_dir(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="is not a directory"):
        load_registry(tmp_path / "nope")


def test_specific_importers_are_tried_before_the_generic_event_importers() -> None:
    names = [importer.name for importer in load_registry().importers]
    assert names.index("payments-csv") < names.index("events-csv")
    assert names[-1] in {i.name for i in load_registry().importers if i.kind == "events"}


def test_payments_file_is_recognised_by_ingest(tmp_path: Path) -> None:
    from ledger.ingest import select_importer

    payments = tmp_path / "payouts.csv"
    payments.write_text(
        "date,amount,currency,invoice,reference\n2026-11-02,10.00,USD,INV-2026-000001,tr_1\n"
    )
    events = tmp_path / "usage.csv"
    events.write_text("id,customer,type,time\n1,acme,api.request,2026-11-02T00:00:00Z\n")
    importers = load_registry().importers
    assert select_importer(payments, importers).name == "payments-csv"
    assert select_importer(events, importers).name == "events-csv"


def test_first_party_importers_broken_dependency_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "meterbook_test_importers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "broken.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry_module, "FIRST_PARTY_IMPORTERS", "meterbook_test_importers")
    with pytest.raises(
        PluginError,
        match=r"plugin meterbook_test_importers\.broken: import failed: .*no_such_dependency_xyz",
    ):
        load_registry()


def install_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module_source: str, module: str
) -> None:
    site = tmp_path / "site"
    dist = site / "meterbook_blocks-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: meterbook-blocks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[meterbook]\nblocks = {module}\n")
    (site / f"{module}.py").write_text(module_source)
    monkeypatch.syspath_prepend(str(site))


def test_entry_point_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_entry_point(tmp_path, monkeypatch, BLOCKS, "meterbook_blocks_ok")
    registry = load_registry()
    info = registry.plugin("blocks")
    assert info.pricing_models == ("per_block",)
    assert info.origin == "entry point meterbook-blocks"


def test_entry_point_that_fails_to_import_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_entry_point(
        tmp_path, monkeypatch, "raise ImportError('needs libfoo')\n", "meterbook_blocks_broken"
    )
    with pytest.raises(
        PluginError,
        match=r"plugin blocks \(entry point meterbook_blocks_broken\): "
        "could not be loaded: ImportError: needs libfoo",
    ):
        load_registry()


RECONCILER = """
from ledger.hookspecs import hookimpl
from ledger.reconcile import Finding, finding_id

SEEN = []


class AlwaysFine:
    name = "always-fine"

    def check(self, context):
        yield Finding(id=finding_id(self.name, "2026-10", "acme"), severity="info", check=self.name,
                      customer="acme", meter=None, period="2026-10", expected=None, actual=None,
                      explanation="all good")


@hookimpl
def meterbook_reconcilers():
    return [AlwaysFine()]


@hookimpl
def meterbook_alert(alert):
    SEEN.append(alert)


@hookimpl
def meterbook_invoice_issued(invoice):
    raise ConnectionError("mail server down")
"""


def test_reconcilers_and_notifications(tmp_path: Path) -> None:
    import sys

    registry = load_registry(plugin_dir(tmp_path, checks=RECONCILER))
    (check,) = [r for r in registry.reconcilers if r.name == "always-fine"]
    assert isinstance(check, Reconciler)
    (finding,) = check.check(None)
    assert finding == Finding(
        "always-fine:acme:2026-10",
        "info",
        "always-fine",
        "acme",
        None,
        "2026-10",
        None,
        None,
        "all good",
    )
    assert not finding.blocks_close
    assert registry.plugin("meterbook_local.checks").reconcilers == ("always-fine",)

    local = "meterbook_local.checks"
    assert [
        f for f in registry.notify("meterbook_alert", alert="cap reached") if f.plugin == local
    ] == []
    assert sys.modules[local].SEEN == ["cap reached"]
    (failure,) = [
        f for f in registry.notify("meterbook_invoice_issued", invoice="INV-1") if f.plugin == local
    ]
    assert (failure.plugin, failure.error) == (
        "meterbook_local.checks",
        "ConnectionError: mail server down",
    )
    # the plain pluggy hook is there too, for callers that want exceptions
    with pytest.raises(ConnectionError):
        registry.hook.meterbook_invoice_issued(invoice="INV-1")


def test_finding_severity_is_checked() -> None:
    with pytest.raises(ValueError, match="severity must be one of error, warning, info"):
        Finding("x", "fatal", "x", None, None, "2026-10", None, None, "")  # type: ignore[arg-type]


def workspace(tmp_path: Path, plugins_dir: str) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(REPO / "rules", root / "rules")
    (root / "meterbook.toml").write_text(f'rules = "rules"\nplugins_dir = "{plugins_dir}"\n')
    return root


def test_cli_plugins_without_a_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:2] == ["ledger.plugins.flat  (first-party)", "  pricing models: flat"]
    assert "ledger.plugins.percentage  (first-party)" in lines
    registry = load_registry()
    assert lines[-1] == (
        f"{len(registry.plugins)} plugins: {len(registry.pricing_models)} pricing models, "
        f"{len(registry.reconcilers)} reconcilers, {len(registry.importers)} importers"
    )
    assert "ledger.importers.payments  (first-party)" in lines


def test_cli_plugins_with_workspace_plugins(tmp_path: Path) -> None:
    plugin_dir(tmp_path / "ws", blocks=BLOCKS, checks=RECONCILER)
    root = workspace(tmp_path, "plugins")
    result = CliRunner().invoke(cli, ["--workspace", str(root), "plugins"])
    assert result.exit_code == 0, result.output
    assert (
        f"meterbook_local.blocks  (workspace {root / 'plugins' / 'blocks.py'})\n"
        "  pricing models: per_block\n" in result.output
    )
    assert "meterbook_local.checks  (workspace" in result.output
    assert "  reconcilers: always-fine\n" in result.output
    base = load_registry()
    assert result.output.splitlines()[-1] == (
        f"{len(base.plugins) + 2} plugins: {len(base.pricing_models) + 1} pricing models, "
        f"{len(base.reconcilers) + 1} reconcilers, {len(base.importers)} importers"
    )

    result = CliRunner().invoke(cli, ["--workspace", str(root), "plugins", "--json"])
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert {
        "name": "meterbook_local.blocks",
        "origin": f"workspace {root / 'plugins' / 'blocks.py'}",
        "pricing_models": ["per_block"],
        "reconcilers": [],
        "importers": [],
    } in rows


def test_cli_plugins_broken_plugin_is_one_line_exit_2(tmp_path: Path) -> None:
    plugin_dir(tmp_path / "ws", bad=hook("return 42"))
    root = workspace(tmp_path, "plugins")
    result = CliRunner().invoke(cli, ["--workspace", str(root), "plugins"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "meterbook: error: plugin meterbook_local.bad: "
        "meterbook_pricing_models() must return a list, got int 42"
    )


def test_cli_plugins_explicit_missing_workspace_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--workspace", str(tmp_path / "nope"), "plugins"])
    assert result.exit_code == 2
    assert "meterbook.toml: not found" in result.output


def test_the_manuals_example_plugin_works(tmp_path: Path) -> None:
    """The complete plugin in ledger/hookspecs.py's docstring, saved as is, loads and prices."""
    from ledger import hookspecs

    doc = hookspecs.__doc__ or ""
    block = doc.split('``meterbook.toml`` says ``plugins_dir = "plugins"``::\n', 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    registry = load_registry(plugin_dir(tmp_path, blocks="\n".join(lines)))
    model = registry.pricing_models["per_block"]
    terms = model.parse({"block_price": "2.00"})
    assert [model.price(terms, Usage(Decimal(q))).amount for q in (0, 100, 101, 250)] == [
        Decimal(0),
        Decimal("2.00"),
        Decimal("4.00"),
        Decimal("6.00"),
    ]


# --- importer kinds: registered through a hook, the first-party ones too ----------------------

REFUNDS = """
from ledger import ingest
from ledger.hookspecs import ImporterKind, hookimpl
from ledger.importers.payments import PaymentsCsv

STORED = []


class RefundsCsv(PaymentsCsv):
    kind = "processor_refunds"
    importer_name = "refunds-csv"


def store_refunds(engine, rules, path, importer, *, now, chunk_size, progress, name):
    def store(conn, raw, batch_id):
        STORED.append((raw.reference, raw.amount))
        return "accepted"

    return ingest.ingest_records(engine, path, importer, store, name=name, progress=progress)


@hookimpl
def meterbook_importers():
    return [RefundsCsv()]


@hookimpl
def meterbook_importer_kinds():
    return [ImporterKind("processor_refunds", store_refunds)]
"""


def test_first_party_importer_kinds_come_through_the_hook() -> None:
    """Nothing is registered by importing a module: the registry asks each plugin. Usage
    events are meterbook's own kind; payments and live totals come through the hook."""
    from ledger import ingest

    registry = load_registry()
    assert sorted(registry.importer_kinds) == ["live_totals", "payments"]
    assert registry.plugin("ledger.importers.payments").importers == ("payments-csv",)
    kinds = {i.kind for i in registry.importers}
    assert kinds == {ingest.EVENTS.name, *registry.importer_kinds}
    assert not hasattr(ingest, "KINDS")


def test_a_third_party_importer_kind_stores_its_files(tmp_path: Path) -> None:
    """A workspace plugin's importer of kind ``processor_refunds`` and its kind: ``meterbook
    ingest --importer refunds-csv`` sends the file's 2 rows to the plugin's store."""
    import sys

    root = tmp_path / "ws"
    assert CliRunner().invoke(cli, ["init", str(root)]).exit_code == 0
    config = root / "meterbook.toml"
    config.write_text(config.read_text().replace('plugins_dir = ""', 'plugins_dir = "plugins"'))
    plugin_dir(root, refunds=REFUNDS)
    refunds = tmp_path / "refunds.csv"
    refunds.write_text(
        "date,amount,currency,invoice,reference\n"
        "2026-10-02,10.00,USD,,R-1\n2026-10-03,2.50,USD,,R-2\n"
    )
    result = CliRunner().invoke(
        cli, ["--workspace", str(root), "ingest", "--importer", "refunds-csv", str(refunds)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        f"{refunds}: received 2, accepted 2, duplicates 0, conflicts 0, rejected 0"
    )
    assert sys.modules["meterbook_local.refunds"].STORED == [("R-1", "10.00"), ("R-2", "2.50")]


def test_an_importer_whose_kind_nobody_registers_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    assert CliRunner().invoke(cli, ["init", str(root)]).exit_code == 0
    config = root / "meterbook.toml"
    config.write_text(config.read_text().replace('plugins_dir = ""', 'plugins_dir = "plugins"'))
    plugin_dir(root, refunds=REFUNDS.split("@hookimpl\ndef meterbook_importer_kinds")[0])
    refunds = tmp_path / "refunds.csv"
    refunds.write_text("date,amount,currency,invoice,reference\n2026-10-02,10.00,USD,,R-1\n")
    result = CliRunner().invoke(
        cli, ["--workspace", str(root), "ingest", "--importer", "refunds-csv", str(refunds)]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"meterbook: error: {refunds}: importer refunds-csv yields 'processor_refunds' records, "
        "which this meterbook cannot store"
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            "from ledger.hookspecs import ImporterKind\n"
            "    return [ImporterKind('payments', lambda *a, **k: None)]",
            "meterbook_importer_kinds() provides 'payments', already provided by plugin "
            "ledger.plugins.record_kinds",
        ),
        (
            "return [('payments', print)]",
            "meterbook_importer_kinds()[0]: tuple ('payments', <built-in function print>) is "
            "not a ledger.hookspecs.ImporterKind",
        ),
        (
            "from ledger.hookspecs import ImporterKind\n    return [ImporterKind('events', print)]",
            "meterbook_importer_kinds()[0]: kind 'events' is meterbook's own (usage events); "
            "name the kind otherwise",
        ),
    ],
    ids=["clash", "not a kind", "events"],
)
def test_a_bad_importer_kind_names_its_plugin(tmp_path: Path, body: str, problem: str) -> None:
    plugins = plugin_dir(tmp_path, kinds=hook(body, "meterbook_importer_kinds"))
    with pytest.raises(PluginError) as refused:
        load_registry(plugins)
    assert str(refused.value) == f"plugin meterbook_local.kinds: {problem}"


def test_a_kind_whose_store_returns_no_report_is_a_plugin_error(tmp_path: Path) -> None:
    from ledger import ingest
    from ledger.hookspecs import ImporterKind
    from ledger.importers.payments import PaymentsCsv
    from ledger.store import open_store

    path = tmp_path / "p.csv"
    path.write_text("date,amount,currency,invoice,reference\n2026-10-02,1.00,USD,,r1\n")
    engine = open_store(f"sqlite:///{tmp_path / 'events.sqlite'}")
    kinds = {"payments": ImporterKind("payments", lambda *args, **kwargs: 2)}
    with pytest.raises(PluginError) as refused:
        ingest.ingest_file(engine, None, path, PaymentsCsv(), kinds=kinds)  # type: ignore[arg-type]
    assert str(refused.value) == (
        f"importer kind 'payments' stored {path} but returned int, not an ImportReport"
    )


def test_an_importer_ingest_cannot_read_is_a_one_line_plugin_error() -> None:
    """``registry.importers`` holds beangulp importers; ``meterbook ingest`` also reads
    ``kind``, ``check`` and ``rows``. A beangulp importer without them is refused with one
    line naming it (not an AttributeError mid-import); the first-party ones pass as they are."""
    from beangulp import Importer as BeangulpImporter

    from ledger.importers.events import importers as first_party
    from ledger.ingest import ingest_importer

    class Bare(BeangulpImporter):
        name = "bare"

        def identify(self, filepath: str) -> bool:
            return False

        def account(self, filepath: str) -> str:
            return "Assets:Nowhere"

    with pytest.raises(PluginError) as raised:
        ingest_importer(Bare())
    assert str(raised.value) == (
        "importer 'bare' (Bare) lacks kind, check, rows, which meterbook ingest reads"
    )
    for importer in first_party():
        assert ingest_importer(importer) is importer
