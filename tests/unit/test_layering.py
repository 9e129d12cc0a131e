"""The package layout is enforced, not described: http -> service -> storage, with schema,
filter, patch and events beside, SQL only under storage, and no import cycles.

The graph is read from the source (AST), so an import hidden in a function body counts as
much as one at the top of the module: both run in production. Imports under
``if TYPE_CHECKING:`` never run; they are kept apart and only checked for the layer rules, not
for cycles (a type-only cycle costs nothing at run time).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "provisor"

DATABASE_LIBRARIES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "alembic")


@dataclass
class Module:
    name: str
    path: Path
    runtime: set[str] = field(default_factory=set)  # every imported module, dotted
    type_only: set[str] = field(default_factory=set)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.name.split(".")
    if module.path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _collect(module: Module, known: set[str]) -> None:
    tree = ast.parse(module.path.read_text(), str(module.path))
    type_only_nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    type_only_nodes.add(id(sub))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            for alias in node.names:
                # `from provisor.storage import tables` imports a module, not a name.
                candidate = f"{base}.{alias.name}"
                names.append(candidate if candidate in known else base)
        else:
            continue
        target = module.type_only if id(node) in type_only_nodes else module.runtime
        target.update(name for name in names if name)


def _graph() -> dict[str, Module]:
    paths = sorted((SRC / PACKAGE).rglob("*.py"))
    modules = {_module_name(p): Module(_module_name(p), p) for p in paths}
    known = set(modules)
    for module in modules.values():
        _collect(module, known)
    return modules


GRAPH = _graph()


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _internal(name: str) -> str | None:
    """The provisor module an import names (its closest known module), or None if external."""
    while name:
        if name in GRAPH:
            return name
        name = name.rpartition(".")[0]
    return None


def _edges(type_only: bool = False) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, module in GRAPH.items():
        imported = module.runtime | (module.type_only if type_only else set())
        targets = {_internal(i) for i in imported if _under(i, PACKAGE)}
        edges[name] = {t for t in targets if t and t != name}
    return edges


def _violations(
    packages: tuple[str, ...], forbidden: tuple[str, ...], allowed: frozenset[str] = frozenset()
) -> list[str]:
    found = []
    for name, module in sorted(GRAPH.items()):
        if name in allowed or not any(_under(name, p) for p in packages):
            continue
        for kind, imported in (("", module.runtime), (" (TYPE_CHECKING)", module.type_only)):
            for target in sorted(imported):
                if any(_under(target, f) for f in forbidden):
                    found.append(f"{name} imports {target}{kind}")
    return found


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: components of more than one module are cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def _one_cycle(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A concrete path a -> b -> ... -> a inside a component, to say what to break."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(edges[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    return component


def test_graph_is_read() -> None:
    """A guard for the guard: the rules below mean something only if imports are found."""
    assert "provisor.http.app" in GRAPH
    assert "provisor.storage.tables" in GRAPH["provisor.storage.resources"].runtime
    assert any(_under(i, "sqlalchemy") for i in GRAPH["provisor.storage.tables"].runtime)


def _cycles(type_only: bool) -> list[str]:
    edges = _edges(type_only)
    return [
        " -> ".join(_one_cycle(c, edges)) + f"  (one of the cycles among {', '.join(c)})"
        for c in _strongly_connected(edges)
    ]


def test_no_import_cycles() -> None:
    """Cycles of imports that run: each module of one needs the others half-initialised."""
    cycles = _cycles(type_only=False)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_import_cycles_through_type_checking() -> None:
    """A cycle closed only by a TYPE_CHECKING import still ties two modules into one unit:
    neither can be understood, tested or moved without the other."""
    cycles = _cycles(type_only=True)
    assert not cycles, "import cycles (counting TYPE_CHECKING imports):\n" + "\n".join(cycles)


def test_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    (component,) = _strongly_connected(edges)
    assert component == ["a", "b", "c"]
    assert _one_cycle(component, edges) == ["a", "b", "c", "a"]


def test_database_libraries_only_under_storage() -> None:
    found = []
    for name, module in sorted(GRAPH.items()):
        if _under(name, "provisor.storage"):
            continue
        for target in sorted(module.runtime | module.type_only):
            if any(_under(target, lib) for lib in DATABASE_LIBRARIES):
                found.append(f"{name} imports {target}")
    assert not found, "database libraries outside provisor.storage:\n" + "\n".join(found)


def test_http_reaches_storage_only_through_service() -> None:
    found = _violations(("provisor.http",), ("provisor.storage",))
    assert not found, "\n".join(found)


def test_storage_imports_neither_service_nor_http() -> None:
    found = _violations(("provisor.storage",), ("provisor.service", "provisor.http"))
    assert not found, "\n".join(found)


def test_service_imports_no_http() -> None:
    found = _violations(("provisor.service",), ("provisor.http",))
    assert not found, "\n".join(found)


def test_side_packages_import_no_layer() -> None:
    found = _violations(
        ("provisor.filter", "provisor.patch", "provisor.schema"),
        ("provisor.storage", "provisor.service", "provisor.http", "provisor.events"),
    )
    assert not found, "\n".join(found)


def test_events_import_no_service_or_http() -> None:
    found = _violations(("provisor.events",), ("provisor.service", "provisor.http"))
    assert not found, "\n".join(found)


@pytest.mark.parametrize("module", ["provisor.patch", "provisor.filter", "provisor.schema"])
def test_pure_packages_do_not_load_sqlalchemy(module: str) -> None:
    """The static rules above see provisor's own imports; this sees what really gets loaded,
    through third-party packages and ``__init__`` side effects too."""
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{DATABASE_LIBRARIES!r})\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


#: Where a database kind may be named: storage/kind.py (the one place that maps a dialect to its
#: implementation), storage/urls.py (URL parsing), the implementations themselves and the
#: migrations. Everywhere else the database's `Backend` part does what differs (docs/architecture.md).
DIALECT_NAMES_ALLOWED = (
    "provisor.storage.kind",
    "provisor.storage.urls",
    "provisor.storage.postgres",
    "provisor.storage.sqlite",
    "provisor.storage.migrations",
)

_KIND_NAMES = frozenset({"sqlite", "postgresql", "postgres"})


def _names_a_kind(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in _KIND_NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_names_a_kind(item) for item in node.elts)
    return False


def _compares_with_a_kind(node: ast.Compare) -> bool:
    equality = any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops)
    return equality and any(_names_a_kind(side) for side in (node.left, *node.comparators))


def _dialect_branches(tree: ast.AST) -> list[int]:
    """Lines that read `dialect.name` or compare a value with a database kind's name."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "name":
            owner = node.value
            if (isinstance(owner, ast.Attribute) and owner.attr == "dialect") or (
                isinstance(owner, ast.Name) and owner.id == "dialect"
            ):
                lines.append(node.lineno)
        elif isinstance(node, ast.Compare) and _compares_with_a_kind(node):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_the_database_kind_is_named_in_one_place() -> None:
    """The database kind is chosen once per engine (storage/kind.py `backend`); portable code calls
    that `Backend`'s parts and never branches on the dialect's name."""
    found = []
    for name, module in sorted(GRAPH.items()):
        if any(_under(name, a) for a in DIALECT_NAMES_ALLOWED):
            continue
        tree = ast.parse(module.path.read_text(), str(module.path))
        found += [f"{module.path.relative_to(SRC)}:{line}" for line in _dialect_branches(tree)]
    assert not found, "branches on the database's name outside storage/kind.py:\n" + "\n".join(found)


def test_dialect_branch_finder_finds_them() -> None:
    code = (
        "a = conn.dialect.name\n"
        "b = kind == 'sqlite'\n"
        "c = 'postgresql' != kind\n"
        "d = kind in ('postgres', 'x')\n"
        "e = dialect.name\n"
        "f = engine.name == 'other'\n"
    )
    assert _dialect_branches(ast.parse(code)) == [1, 2, 3, 4, 5]


#: Storage modules the service layer may import from directly: the boundary's vocabulary, not
#: operations. Transactions and the handles they give (transactions, handles, auth_cache's
#: `auth_write`, a write transaction that invalidates cached credentials), storage's errors and
#: their classification (errors, faults), how a value is normalised for the index (indexing: pure
#: functions of the schema, no database), and opening a database (engine, instrument). Any other
#: storage module is reached through a Protocol of storage/interfaces/; from it the service
#: imports only data types and constants (a dataclass such as `StoredResource`, `DEFAULT_TENANT`).
STORAGE_VOCABULARY = frozenset(
    f"provisor.storage.{name}"
    for name in (
        "transactions",
        "handles",
        "auth_cache",
        "errors",
        "faults",
        "indexing",
        "engine",
        "instrument",
    )
)
INTERFACES = "provisor.storage.interfaces"


def _is_operation(module: str, name: str) -> bool:
    """Whether `module.name` is something the service would call: a function (a class builds a
    value; a constant is a value)."""
    return inspect.isroutine(getattr(importlib.import_module(module), name))


def _contract_bypasses(module: Module, tree: ast.AST) -> list[str]:
    """Where a service module reaches a storage operation other than through a binding typed by a
    Protocol of storage/interfaces/: an imported storage function, a storage module object used
    other than as the value of such a binding or to name one of its data types."""
    protocols: set[str] = set()
    module_objects: dict[str, str] = {}  # local name -> storage module
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: import {a.name}"
                for a in node.names
                if _under(a.name, "provisor.storage")
            ]
        if not isinstance(node, ast.ImportFrom):
            continue
        base = _resolve(module, node)
        if not _under(base, "provisor.storage"):
            continue
        for alias in node.names:
            local = alias.asname or alias.name
            if f"{base}.{alias.name}" in GRAPH:
                if f"{base}.{alias.name}" not in STORAGE_VOCABULARY:
                    module_objects[local] = f"{base}.{alias.name}"
            elif _under(base, INTERFACES):
                protocols.add(local)
            elif base not in STORAGE_VOCABULARY and _is_operation(base, alias.name):
                found.append(f"line {node.lineno}: imports {base}.{alias.name}")
    allowed: set[int] = set()  # ids of module-object Names used correctly
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Name):
            if isinstance(node.annotation, ast.Name) and node.annotation.id in protocols:
                allowed.add(id(node.value))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            target = module_objects.get(node.value.id)
            if target and not _is_operation(target, node.attr):
                allowed.add(id(node.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in module_objects and id(node) not in allowed:
            found.append(f"line {node.lineno}: uses {module_objects[node.id]} as `{node.id}` unbound")
    return sorted(found, key=lambda f: int(f.split()[1].rstrip(":")))


def test_service_reaches_storage_through_the_contract() -> None:
    """The service calls storage only through names typed by storage/interfaces/ (`_store: Roles =
    store`), so mypy checks each storage module against its contract and each call against the
    contract's methods. Imported directly: transactions, handles, errors, data types."""
    found = []
    for name, module in sorted(GRAPH.items()):
        if _under(name, "provisor.service"):
            tree = ast.parse(module.path.read_text(), str(module.path))
            found += [f"{module.path.relative_to(SRC)}: {f}" for f in _contract_bypasses(module, tree)]
    assert not found, "storage reached around storage/interfaces/:\n" + "\n".join(found)


def test_contract_bypass_finder_finds_them() -> None:
    code = (
        "from provisor.storage import roles as store\n"
        "from provisor.storage import tenants\n"
        "from provisor.storage.interfaces import Roles\n"
        "from provisor.storage.roles import Mapping, running_jobs\n"
        "from provisor.storage.transactions import write_transaction\n"
        "_store: Roles = store\n"
        "store.mappings\n"
        "x: store.RoleJob\n"
        "tenants.get_settings\n"
        "_any: object = tenants\n"
        "run(store)\n"
    )
    module = Module("provisor.service.x", SRC / "provisor" / "service" / "x.py")
    assert _contract_bypasses(module, ast.parse(code)) == [
        "line 4: imports provisor.storage.roles.running_jobs",
        "line 7: uses provisor.storage.roles as `store` unbound",
        "line 9: uses provisor.storage.tenants as `tenants` unbound",
        "line 10: uses provisor.storage.tenants as `tenants` unbound",
        "line 11: uses provisor.storage.roles as `store` unbound",
    ]
