"""The design rules a reviewer would otherwise check by eye, checked on the source itself.

- The engine and the loaders never branch on an entity's name (entities are data:
  ``pipeline/entities.py`` declares them) nor on a database's name (``warehouse/backends``
  says what differs between databases; a URL's database is checked where settings are read).
- The project's modules import each other without cycles (module-level imports; an import
  inside a function is a deliberate, lazy one).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.entities import APP_ENTITIES, ENTITIES

ROOT = Path(__file__).resolve().parents[1]
#: The project's packages (pyproject's ``packages.find``), the sandbox and benchmarks aside:
#: the sandbox plays Finale, and is allowed to know Finale's entities by name.
PACKAGES = (
    "analytics", "connectors", "deployments", "events", "flows", "formats", "invsync",
    "notifications", "pipeline", "reporting", "schemas", "tasks", "warehouse", "writeback",
)  # fmt: skip
#: Where naming an entity is the point: the specs themselves and the tables.
ENTITY_NAME_HOMES = {
    "pipeline/entities.py",
    "schemas/tables.py",
}
#: Where naming a database is the point: the backends, and the settings that check a URL.
DATABASE_NAME_HOMES = {
    "warehouse/backends/__init__.py",
    "warehouse/backends/base.py",
    "warehouse/backends/postgres.py",
    "warehouse/backends/sqlite.py",
    "warehouse/db.py",
    "invsync/settings.py",
    "writeback/migrate.py",
    # The app's two read paths are named after how they read: "postgres" and "rest".
    "connectors/supabase/reader.py",
}
DATABASE_NAMES = {"postgresql", "postgres", "sqlite"}
_SPECS = [*ENTITIES.values(), *APP_ENTITIES.values()]
#: Entities and their tables (a child table too: ``purchase_order_lines``).
ENTITY_NAMES = {spec.name for spec in _SPECS} | {
    table.name
    for spec in _SPECS
    for table in (spec.table, spec.child.table if spec.child else None)
    if table is not None
}


def _sources() -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/versions/" in relative:
                continue  # a migration is a frozen record of one table's history
            yield relative, ast.parse(path.read_text(), relative)


def _branch_tests(tree: ast.Module) -> Iterator[ast.AST]:
    """The conditions of ifs, conditional expressions, whiles, comprehension filters and the
    patterns of match cases."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If | ast.IfExp | ast.While):
            yield node.test
        elif isinstance(node, ast.comprehension):
            yield from node.ifs
        elif isinstance(node, ast.Match):
            for case in node.cases:
                yield case.pattern


def _strings_compared(condition: ast.AST) -> Iterator[tuple[str, int]]:
    """String constants a condition compares something with (``==``, ``!=``, ``in``)."""
    for node in ast.walk(condition):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                for constant in ast.walk(operand):
                    if isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                        yield constant.value, node.lineno
        elif isinstance(node, ast.MatchValue) and isinstance(node.value, ast.Constant):
            value = node.value.value
            if isinstance(value, str):
                yield value, node.lineno


def _named_branches(names: set[str], homes: set[str]) -> list[str]:
    found = []
    for relative, tree in _sources():
        if relative in homes:
            continue
        for condition in _branch_tests(tree):
            for value, line in _strings_compared(condition):
                if value in names:
                    found.append(f"{relative}:{line}: branches on {value!r}")
    return sorted(set(found))


def test_no_branch_outside_the_specs_names_an_entity() -> None:
    assert _named_branches(ENTITY_NAMES, ENTITY_NAME_HOMES) == []


def test_no_branch_outside_the_backends_and_settings_names_a_database() -> None:
    assert _named_branches(DATABASE_NAMES, DATABASE_NAME_HOMES) == []


def test_the_checks_find_a_branch_on_a_name() -> None:
    # The two checks above pass on an empty list: make sure they can see a branch at all.
    tree = ast.parse(
        "if spec.name == 'stock':\n    pass\nx = 1 if conn.dialect.name in ('postgresql',) else 2\n"
    )
    seen = {value for test in _branch_tests(tree) for value, _ in _strings_compared(test)}
    assert seen == {"stock", "postgresql"}


def _module_name(relative: str) -> str:
    parts = relative.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Project modules ``module`` imports at its top level when it is loaded (imports
    inside functions and under ``if TYPE_CHECKING:`` are not followed)."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Import cycles in ``graph`` (module -> modules it imports), each as a closed path."""
    cycles: list[list[str]] = []
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = "open"
        path.append(name)
        for target in graph.get(name, []):
            if state.get(target) == "open":
                cycle = path[path.index(target) :]
                # A package importing its own submodules is not a cycle between modules.
                if not all(module.startswith(target + ".") for module in cycle[1:]):
                    cycles.append([*cycle, target])
            elif target not in state:
                visit(target)
        path.pop()
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)
    return cycles


def test_the_project_has_no_import_cycles() -> None:
    modules = {}
    for relative, tree in _sources():
        modules[_module_name(relative)] = (tree, relative.endswith("__init__.py"))
    graph = {
        name: sorted(
            target
            for target in _module_level_imports(tree, name, is_package)
            if target in modules and target != name
        )
        for name, (tree, is_package) in modules.items()
    }

    assert _cycles(graph) == [], "\n".join(" -> ".join(cycle) for cycle in _cycles(graph))


def test_the_cycle_check_finds_a_cycle_and_lets_a_package_import_its_modules() -> None:
    graph = {
        "warehouse.load": ["warehouse.stock"],
        "warehouse.stock": ["warehouse.load"],
        "events": ["events.outbox"],
        "events.outbox": ["events"],
    }
    assert _cycles(graph) == [["warehouse.load", "warehouse.stock", "warehouse.load"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_listed_here_exists(package: str) -> None:
    assert (ROOT / package / "__init__.py").exists()
