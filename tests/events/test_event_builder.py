"""Event rows have one owner: the ops enum and builder in events/model.py, the INSERT in
storage/outbox_sql.py. A column or op added there reaches every writer; these checks fail when a
module spells its own events INSERT or op string again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import provisor
from provisor.events.model import EVENT_COLUMNS, OPS, EventOp, event_row, parse_ops
from provisor.storage.outbox import events_insert, op_literal
from provisor.storage.tables import events

SRC = Path(provisor.__file__).parent
OUTBOX = SRC / "storage" / "outbox_sql.py"
#: An events INSERT in SQL text or SQLAlchemy Core, however it is spaced or cased.
SPELLED = re.compile(r"insert\s+into\s+events\b|insert\(\s*events\s*\)|events\.insert\(", re.IGNORECASE)


def test_only_the_outbox_spells_the_events_insert() -> None:
    spelling = [
        str(path.relative_to(SRC))
        for path in sorted(SRC.rglob("*.py"))
        if path != OUTBOX and SPELLED.search(path.read_text())
    ]
    assert spelling == []
    assert SPELLED.search(OUTBOX.read_text())


def test_the_builder_gives_every_column_of_the_table_but_seq() -> None:
    assert set(EVENT_COLUMNS) == {c.name for c in events.c} - {"seq"}
    row = event_row(
        tenant_id="t",
        at="2026-01-01T00:00:00Z",
        resource_type="User",
        resource_id="u",
        op=EventOp.ADOPTED,
        version=2,
        actor=None,
        payload=None,
    )
    assert tuple(row) == EVENT_COLUMNS and row["op"] == "adopted"


def test_an_op_outside_the_enum_is_refused() -> None:
    with pytest.raises(ValueError):
        event_row(
            tenant_id="t",
            at="x",
            resource_type="User",
            resource_id="u",
            op="renamed",  # type: ignore[arg-type]
            version=None,
            actor=None,
            payload=None,
        )


def test_adopted_is_an_op_the_feed_and_webhooks_can_select() -> None:
    assert "adopted" in OPS and parse_ops("adopted,Created") == ["adopted", "created"]


def test_statement_texts_take_the_column_list_from_one_place() -> None:
    sql = events_insert("updated", "seq", op=op_literal(EventOp.CREATED), version="1")
    assert f"INSERT INTO events ({', '.join(EVENT_COLUMNS)})" in sql
    assert "SELECT :tenant_id, :at, :resource_type, :resource_id, 'created', 1, :actor, :payload" in sql
    with pytest.raises(ValueError):
        events_insert("updated", seq="1")


def test_no_writer_spells_an_op_string() -> None:
    """The writers (service/, storage/) name ops as EventOp members: `op="deleted"` or
    `"op": "created"` there is a second owner of the vocabulary."""
    ops = "|".join(OPS)
    quoted = re.compile(rf"""\bop["']?\s*[=:]\s*["']({ops})["']""")
    found = [
        f"{path.relative_to(SRC)}:{n}"
        for layer in ("service", "storage")
        for path in sorted((SRC / layer).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if quoted.search(line)
    ]
    assert found == []
