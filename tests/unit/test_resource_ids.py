"""New resource ids: RFC 9562 version-7 UUIDs, so that creates append to the id-keyed indexes."""

from __future__ import annotations

import time
import uuid

from provisor.ids import new_resource_id


def test_ids_are_version_7_uuids_in_canonical_form() -> None:
    for _ in range(1000):
        text = new_resource_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_ids_start_with_their_creation_time_and_sort_by_it() -> None:
    before = time.time_ns() // 1_000_000
    first = new_resource_id()
    time.sleep(0.002)
    second = new_resource_id()
    after = time.time_ns() // 1_000_000
    assert before <= uuid.UUID(first).int >> 80 <= uuid.UUID(second).int >> 80 <= after
    assert first < second  # text order is time order: the indexes get them at their end


def test_ids_do_not_repeat() -> None:
    ids = [new_resource_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
