"""The layout's rules, read from the source: what each layer may import (see ARCHITECTURE.md).

An import that runs back up (a leaf importing a stage, storage importing the service, a stage
calling another stage's job) fails here, naming the module and the import, before it tangles
the house again. Imports under ``if TYPE_CHECKING:`` are for annotations only and not counted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("service", "handlers", "storage")

# The bottom of the house: what every layer may import.
LEAVES = {"service.errors", "service.ids", "service.costs.amounts", "storage.records"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in OURS:
        for path in sorted((ROOT / top).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[str]:
    """The modules of ours that ``tree`` imports when it runs (at any depth)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from _runtime_imports(child)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in MODULES:
                    yield submodule
                elif node.module in MODULES:
                    yield node.module
        yield from _runtime_imports(node)


IMPORTS = {
    name: sorted(set(_runtime_imports(ast.parse(path.read_text(encoding="utf-8")))))
    for name, path in MODULES.items()
}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _outside(package: str, allowed: set[str]) -> list[str]:
    """``module -> import`` for each import of ``package``'s modules outside it and ``allowed``."""
    return [
        f"{module} -> {imported}"
        for module, imports in IMPORTS.items()
        if _within(module, package)
        for imported in imports
        if not _within(imported, package) and imported not in allowed
    ]


def test_the_rules_see_the_tree() -> None:
    # a rule over no modules passes whatever the tree: make sure the walk found them
    assert {"service.apply.lifecycle", "service.jobs.kinds", "storage.sqlite.backend"} <= set(
        MODULES
    )
    assert "service.jobs.kinds" in IMPORTS["service.apply.events"]


@pytest.mark.parametrize("leaf", ["service.jobs", "service.egress"])
def test_the_job_vocabulary_and_egress_are_leaves(leaf: str) -> None:
    assert _outside(leaf, LEAVES) == []


def test_storage_knows_nothing_of_the_service_above_it() -> None:
    assert _outside("storage", LEAVES) == []


def test_a_stages_job_is_run_only_by_the_worker() -> None:
    jobs = {name for name in MODULES if name.endswith(".job")}
    assert len(jobs) >= 6  # submit, apply, download, handlers, deliver, reconcile
    callers = [
        f"{module} -> {imported}"
        for module, imports in IMPORTS.items()
        for imported in imports
        if imported in jobs and module != "service.worker.runners"
    ]
    assert callers == []


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over runtime imports: each must be one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in IMPORTS[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert cycles == []


def test_the_service_needs_no_plugin() -> None:
    """The built-in plugins are plugins: only the registry, which loads them, knows them."""
    users = [
        f"{module} -> {imported}"
        for module, imports in IMPORTS.items()
        if not _within(module, "handlers.builtin") and module != "handlers.registry"
        for imported in imports
        if _within(imported, "handlers.builtin")
    ]
    assert users == []


def _process_state(tree: ast.AST) -> Iterator[str]:
    """``global`` statements and memoising decorators: state a process keeps beside Services."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            yield f"global {', '.join(node.names)} (line {node.lineno})"
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                name = (
                    target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                )
                if name in {"cache", "lru_cache"}:
                    yield f"@{name} on {node.name} (line {node.lineno})"


def test_per_process_state_lives_in_services() -> None:
    found = [
        f"{module}: {what}"
        for module, path in MODULES.items()
        for what in _process_state(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert found == []


# What the stages stand on, and what stands on them (the stages, Services that holds their
# state, and the processes): nothing of the first imports anything of the second.
BENEATH = (
    "service.jobs",
    "service.egress",
    "service.kling",
    "service.costs",
    "service.settings",
    "service.provider_slots",
    "service.http",
    "service.metrics",
    "service.supervise",
    "service.views",
    "service.worker_health",
    "storage",
)
ABOVE = (
    "service.services",
    "service.submit",
    "service.receiver",
    "service.apply",
    "service.downloads",
    "handlers.job",
    "handlers.runs",
    "service.webhooks",
    "service.reconcile",
    "service.worker",
    "service.api",
    "service.app",
    "service.bootstrap",
    "service.cli",
)


def test_nothing_beneath_the_stages_imports_them() -> None:
    assert all(any(_within(name, package) for name in MODULES) for package in BENEATH + ABOVE)
    upward = [
        f"{module} -> {imported}"
        for module, imports in IMPORTS.items()
        if any(_within(module, low) for low in BENEATH)
        for imported in imports
        if any(_within(imported, high) for high in ABOVE)
    ]
    assert upward == []
