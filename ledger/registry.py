"""The plugin registry: every pricing model, importer, importer kind and reconciler, by plugin.

``load_registry`` registers plugins in a fixed order, all through the hooks of
:mod:`ledger.hookspecs` (first-party code uses no private shortcut)::

    1. ledger.plugins.*            every module of the first-party package (pkgutil)
    2. ledger.importers.*          every first-party importer module (events, payments, live totals)
    3. entry points "meterbook"    installed third-party packages
    4. <plugins_dir>/*.py          the workspace's own plugins, as meterbook_local.<stem>

and then checks that every hook implementation matches a specification. A
worked example (``meterbook plugins`` prints the same)::

    >>> registry = load_registry()
    >>> sorted(registry.pricing_models)
    ['flat', 'graduated', 'package', 'percentage', 'unit', 'volume']
    >>> registry.plugin("ledger.plugins.graduated").pricing_models
    ('graduated',)

Each collection hook is called once per plugin, so a plugin that raises or
returns nonsense is named in the :class:`~ledger.errors.PluginError`, as are
both plugins when two provide the same name.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import pkgutil
import sys
import types
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from ledger import hookspecs
from ledger.errors import PluginError
from ledger.hookspecs import ImporterKind, PluginImporter
from ledger.pricing import PricingModel
from ledger.reconcile import Reconciler

FIRST_PARTY_PACKAGE = "ledger.plugins"
FIRST_PARTY_IMPORTERS = "ledger.importers"
#: The generic usage-event importers (a CSV header with ``id,customer,type,time``, a JSON
#: record with ``id``) are tried last by ``meterbook ingest``: importers that recognise a
#: more specific header (payments, live totals, a third party's export) get the file first,
#: and a ``.csv``/``.jsonl`` nobody recognises falls back to them to have its header refused.
FALLBACK_IMPORTERS = "ledger.importers.events"
ENTRY_POINT_GROUP = hookspecs.PROJECT
LOCAL_PACKAGE = "meterbook_local"


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin and what it provides (by name)."""

    name: str
    #: ``first-party``, ``entry point <distribution>`` or ``workspace <path>``
    origin: str
    pricing_models: tuple[str, ...] = ()
    reconcilers: tuple[str, ...] = ()
    importers: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotificationFailure:
    """A notification plugin that raised; notifications are best effort."""

    plugin: str
    hook: str
    error: str


class Registry:
    """The loaded plugins: pricing models by name, reconcilers, importers and the kinds of
    record they yield, notifications."""

    def __init__(self, pm: pluggy.PluginManager, origins: Mapping[str, str]):
        self._pm = pm
        self.hook = pm.hook
        models = _collect(pm, "meterbook_pricing_models", _check_pricing_model)
        reconcilers = _collect(pm, "meterbook_reconcilers", _check_reconciler)
        importers = _collect(pm, "meterbook_importers", _check_importer)
        kinds = _collect(pm, "meterbook_importer_kinds", _check_importer_kind)
        self.pricing_models: Mapping[str, PricingModel] = types.MappingProxyType(
            {name: obj for name, (_plugin, obj) in sorted(models.items())}
        )
        self.reconcilers: tuple[Reconciler, ...] = tuple(obj for _p, obj in reconcilers.values())
        #: beangulp importers (:func:`_check_importer`); ``meterbook ingest`` checks that
        #: the one it picks has what it reads (:func:`ledger.ingest.ingest_importer`)
        self.importers: tuple[PluginImporter, ...] = tuple(
            obj
            for _p, obj in sorted(importers.values(), key=lambda po: po[0] == FALLBACK_IMPORTERS)
        )
        #: every kind of record the plugins' importers yield, by name (``Importer.kind``),
        #: but usage ``events``, meterbook's own (:data:`ledger.ingest.EVENTS`)
        self.importer_kinds: Mapping[str, ImporterKind] = types.MappingProxyType(
            {name: obj for name, (_plugin, obj) in sorted(kinds.items())}
        )
        infos = []
        for name, _plugin in pm.list_name_plugin():
            if _plugin is None:  # blocked
                continue
            infos.append(
                PluginInfo(
                    name=name,
                    origin=origins.get(name, "first-party"),
                    pricing_models=tuple(sorted(n for n, (p, _o) in models.items() if p == name)),
                    reconcilers=tuple(n for n, (p, _o) in reconcilers.items() if p == name),
                    importers=tuple(n for n, (p, _o) in importers.items() if p == name),
                )
            )
        self.plugins: tuple[PluginInfo, ...] = tuple(infos)

    def plugin(self, name: str) -> PluginInfo:
        """The plugin registered as ``name``."""
        for info in self.plugins:
            if info.name == name:
                return info
        raise KeyError(name)

    def notify(
        self, hook: str, *, only: Collection[str] | None = None, **kwargs: Any
    ) -> tuple[NotificationFailure, ...]:
        """Call a notification hook on every plugin (or only the plugins named in ``only``);
        failures are returned, not raised.

        ``only`` lets a caller retry the plugins that failed without repeating the
        notification to those that took it (:func:`ledger.alerts.raise_alerts`); a name
        that is not loaded or does not implement ``hook`` is skipped.

        >>> load_registry().notify("meterbook_alert", alert=None)
        ()
        >>> load_registry().notify("meterbook_alert", only={"ledger.plugins.webhook"}, alert=None)
        ()
        """
        failures = []
        caller = getattr(self._pm.hook, hook)
        for impl in caller.get_hookimpls():
            if only is not None and impl.plugin_name not in only:
                continue
            try:
                impl.function(*[kwargs[arg] for arg in impl.argnames])
            except Exception as exc:
                failures.append(
                    NotificationFailure(impl.plugin_name, hook, f"{type(exc).__name__}: {exc}")
                )
        return tuple(failures)


def load_registry(plugins_dir: Path | None = None) -> Registry:
    """Register first-party, installed and workspace plugins; validate what they provide."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    origins: dict[str, str] = {}

    for package in (FIRST_PARTY_PACKAGE, FIRST_PARTY_IMPORTERS):
        for name in _package_modules(package):
            _register(pm, _import(name), name)
            origins[name] = "first-party"

    before = {name for name, _ in pm.list_name_plugin()}
    try:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    except Exception as exc:
        raise PluginError(
            f"{_failing_entry_point(pm)}: could not be loaded: {type(exc).__name__}: {exc}"
        ) from None
    for plugin, dist in pm.list_plugin_distinfo():
        ep_name = pm.get_name(plugin)
        if ep_name is not None and ep_name not in before:
            origins[ep_name] = f"entry point {dist.project_name}"

    if plugins_dir is not None:
        for name, path in _local_modules(plugins_dir):
            _register(pm, _import_file(name, path), name)
            origins[name] = f"workspace {path}"

    _check_hook_names(pm)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {pm.get_name(exc.plugin) or exc.plugin!r}: {exc}") from None
    return Registry(pm, origins)


# --- loading -------------------------------------------------------------------------


def _package_modules(package: str) -> list[str]:
    """The modules of a first-party package, sorted; names starting ``_`` skipped."""
    path = importlib.import_module(package).__path__
    return [
        f"{package}.{info.name}"
        for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name)
        if not info.name.startswith("_")
    ]


def _import(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise PluginError(f"plugin {name}: import failed: {type(exc).__name__}: {exc}") from None


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name}: {exc}") from None
    except ValueError as exc:  # the same name or module registered twice
        raise PluginError(f"plugin {name}: {exc}") from None


def _local_modules(plugins_dir: Path) -> list[tuple[str, Path]]:
    """``*.py`` files and packages in ``plugins_dir``, sorted; names starting ``_`` skipped."""
    if not plugins_dir.is_dir():
        raise PluginError(f"plugins_dir {plugins_dir} is not a directory")
    found = []
    for path in sorted(plugins_dir.iterdir()):
        if path.name.startswith(("_", ".")):
            continue
        if path.suffix == ".py" and path.is_file():
            found.append((f"{LOCAL_PACKAGE}.{path.stem}", path))
        elif path.is_dir() and (path / "__init__.py").is_file():
            found.append((f"{LOCAL_PACKAGE}.{path.name}", path))
    return found


def _import_file(name: str, path: Path) -> types.ModuleType:
    """Import a workspace plugin by path (fresh on every load: the files may have changed)."""
    if LOCAL_PACKAGE not in sys.modules:
        parent = types.ModuleType(LOCAL_PACKAGE, "Modules from workspaces' plugins_dir.")
        parent.__path__ = []
        sys.modules[LOCAL_PACKAGE] = parent
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(
            name, path / "__init__.py", submodule_search_locations=[str(path)]
        )
    else:
        spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin {name}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise PluginError(
            f"plugin {name} ({path}): import failed: {type(exc).__name__}: {exc}"
        ) from None
    return module


def _failing_entry_point(pm: pluggy.PluginManager) -> str:
    """Name the entry point that fails to load (pluggy's loader does not say)."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            ep.load()
        except Exception:
            return f"plugin {ep.name} (entry point {ep.value})"
    return f"a plugin of entry-point group {ENTRY_POINT_GROUP!r}"


def _check_hook_names(pm: pluggy.PluginManager) -> None:
    """Name the plugin and the misspelt hook (what ``check_pending`` does, in one line)."""
    known = sorted(name for name in dir(hookspecs) if name.startswith(f"{hookspecs.PROJECT}_"))
    for name, caller in sorted(vars(pm.hook).items()):
        if name in known or not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if not impl.optionalhook:
                raise PluginError(
                    f"plugin {impl.plugin_name}: unknown hook {name!r} (hooks: {', '.join(known)})"
                )


# --- collecting and checking -----------------------------------------------------------


def _collect(
    pm: pluggy.PluginManager, hook: str, check: Callable[[object], str | None]
) -> dict[str, tuple[str, Any]]:
    """Call ``hook`` on each plugin separately; return {provided name: (plugin, object)}."""
    found: dict[str, tuple[str, Any]] = {}
    caller = getattr(pm.hook, hook)
    for impl in caller.get_hookimpls():  # registration order
        plugin = impl.plugin_name
        if impl.hookwrapper or impl.wrapper:
            raise PluginError(
                f"plugin {plugin}: {hook} cannot be a wrapper (it is called once per plugin)"
            )
        try:
            result = impl.function()
        except Exception as exc:
            raise PluginError(
                f"plugin {plugin}: {hook}() raised {type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(result, list | tuple):
            raise PluginError(
                f"plugin {plugin}: {hook}() must return a list, got {_describe(result)}"
            )
        for i, obj in enumerate(result):
            problem = check(obj)
            if problem:
                raise PluginError(f"plugin {plugin}: {hook}()[{i}]: {problem}")
            name = obj.name  # type: ignore[attr-defined]  # checked above
            if name in found:
                other = found[name][0]
                raise PluginError(
                    f"plugin {plugin}: {hook}() provides {name!r}, "
                    f"already provided by plugin {other}"
                )
            found[name] = (plugin, obj)
    return found


def _describe(value: object) -> str:
    return "None" if value is None else f"{type(value).__name__} {value!r:.60}"


def _missing(obj: object, methods: Iterable[str]) -> str | None:
    if isinstance(obj, type):
        return f"got the class {obj.__name__}, expected an instance ({obj.__name__}())"
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name.strip():
        return f"{_describe(obj)} has no 'name' string"
    absent = [m for m in methods if not callable(getattr(obj, m, None))]
    if absent:
        return f"{name!r} ({type(obj).__name__}) lacks {', '.join(absent)}"
    return None


def _check_pricing_model(obj: object) -> str | None:
    problem = _missing(obj, ("parse", "price_is_final", "bands", "price"))
    if problem is None and any(c.isspace() for c in obj.name):  # type: ignore[attr-defined]
        problem = f"model name {obj.name!r} contains whitespace"  # type: ignore[attr-defined]
    return problem


def _check_reconciler(obj: object) -> str | None:
    return _missing(obj, ("check",))


#: The kind of record meterbook stores itself (usage events): no plugin provides it.
OWN_KIND = "events"


def _check_importer_kind(obj: object) -> str | None:
    if not isinstance(obj, ImporterKind):
        return f"{_describe(obj)} is not a ledger.hookspecs.ImporterKind"
    if not isinstance(obj.name, str) or not obj.name.strip() or not callable(obj.store):
        return f"{obj!r:.80} needs a name and a callable store"
    if obj.name == OWN_KIND:
        return f"kind {OWN_KIND!r} is meterbook's own (usage events); name the kind otherwise"
    return None


def _check_importer(obj: object) -> str | None:
    from beangulp import Importer

    problem = _missing(obj, ("identify",))
    if problem is None and not isinstance(obj, Importer):
        problem = f"{type(obj).__name__} is not a beangulp.Importer"
    return problem
