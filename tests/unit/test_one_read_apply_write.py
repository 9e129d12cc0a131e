"""A PATCH (and a PUT) has one implementation of read, apply, write, whatever the database and
whether it retries: `ResourceService._read_apply_write` (service/resources.py). A resource type
varies it only through hooks (`unlocked_first`, `run_patch`, `write_unlocked`, ...), never by a
flow of its own.

Read from the source, as tests/unit/test_layering.py reads imports: a second flow beside it (a
group's member push did have one) would call the storage primitives of a write, or the PATCH
pipeline, from somewhere else, or override the operations. tests/api/test_read_apply_write.py
checks the flow's behaviour (If-Match against the version read, retries under the lock).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "provisor"

#: Storage's read-for-write and write primitives of a PUT or PATCH, and the PATCH pipeline.
PRIMITIVES = frozenset(
    {
        "resource_write",
        "update_at_once",
        "change_members_at_once",
        "run_with_member_loader",
        "apply_operations",
        "patch_document",
        "apply_patch",
    }
)

#: Where each may be called: the flow, and the hooks it calls.
ALLOWED = {
    ("service/resources.py", "ResourceService._read_apply_write", "resource_write"),
    ("service/resources.py", "ResourceService.patched", "apply_operations"),
    ("service/groups.py", "GroupService.write_unlocked", "change_members_at_once"),
    ("service/groups.py", "GroupService.run_patch", "run_with_member_loader"),
}

#: The operations the flow implements: a resource type may not define its own.
OPERATIONS = frozenset({"patch", "replace", "_read_apply_write", "_write"})


def _calls(path: Path) -> list[tuple[str, str]]:
    """(enclosing class.function, called name) of every call of a primitive in the module."""
    found: list[tuple[str, str]] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, [*scope, child.name])
                continue
            if isinstance(child, ast.Call):
                func = child.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if name in PRIMITIVES:
                    found.append((".".join(s for s in scope if not s.startswith("<")), name))
            visit(child, scope)

    visit(ast.parse(path.read_text(), str(path)), [])
    return found


def _enclosing(qualname: str) -> str:
    """The class and method a nested function belongs to (`patch.patched` -> `patch`)."""
    return ".".join(qualname.split(".")[:2])


def test_only_the_flow_and_its_hooks_call_the_write_primitives() -> None:
    outside = []
    for path in sorted((SRC / "service").rglob("*.py")) + sorted((SRC / "http").rglob("*.py")):
        relative = str(path.relative_to(SRC))
        for qualname, name in _calls(path):
            if (relative, _enclosing(qualname), name) not in ALLOWED:
                outside.append(f"{relative}: {qualname} calls {name}")
    assert not outside, "a read-apply-write outside ResourceService._read_apply_write:\n" + "\n".join(outside)


def test_the_flow_is_found() -> None:
    """A guard for the guard: the allowed calls are where the rule says."""
    found = {
        (str(path.relative_to(SRC)), _enclosing(q), n)
        for path in (SRC / "service" / "resources.py", SRC / "service" / "groups.py")
        for q, n in _calls(path)
    }
    assert found == ALLOWED


def test_no_resource_type_has_its_own_put_or_patch() -> None:
    own = []
    for path in sorted((SRC / "service").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ClassDef) or node.name == "ResourceService":
                continue
            if not any(isinstance(b, ast.Name) and b.id.endswith("Service") for b in node.bases):
                continue
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in OPERATIONS:
                    own.append(f"{path.relative_to(SRC)}: {node.name}.{item.name}")
    assert not own, "PUT/PATCH overridden by a resource type:\n" + "\n".join(own)
