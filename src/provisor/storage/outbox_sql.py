"""The events INSERT, spelled once: every statement that writes an event takes its column list
from `EVENT_COLUMNS` (events/model.py) here: `APPEND_EVENT` for one row, `events_insert` for the
INSERT ... SELECT at the end of the one-statement writes of PostgreSQL. A column added to events is
then added in one place (and a statement that does not say what goes into it fails when the module
is imported). tests/events/test_event_builder.py checks no other module spells an events INSERT.

A building block: it runs nothing, so both databases' modules import it (storage/outbox.py runs
`APPEND_EVENT`).
"""

from __future__ import annotations

from sqlalchemy import bindparam, insert

from provisor.events.model import EVENT_COLUMNS, EventOp
from provisor.storage.statements import DirectStatement
from provisor.storage.tables import events

#: Built once, run on the driver connection: every write appends one (storage/direct.py).
APPEND_EVENT = DirectStatement(
    insert(events).values({c: bindparam(c, type_=events.c[c].type) for c in EVENT_COLUMNS})
)


def events_insert(source: str, returning: str = "", **values: str) -> str:
    """`INSERT INTO events (...) SELECT ... FROM source [RETURNING ...]` for a statement's text:
    each column's SQL expression is `values[column]`, else the parameter of its name (`:at`)."""
    unknown = set(values) - set(EVENT_COLUMNS)
    if unknown:
        raise ValueError(f"not columns of events: {sorted(unknown)}")
    exprs = ", ".join(values.get(column, f":{column}") for column in EVENT_COLUMNS)
    text = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)})\n        SELECT {exprs}\n        FROM {source}"
    return f"{text}\n        RETURNING {returning}" if returning else text


def op_literal(op: EventOp) -> str:
    """An op as a SQL literal for `events_insert` (values of the enum only: never user input)."""
    return f"'{EventOp(op).value}'"
