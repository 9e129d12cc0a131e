"""Directory import and export (`provisor import` / `provisor export`).

Import validates every record before writing anything, so `--strict` can refuse a file with no
side effects and `--dry-run` can say exactly what would change. Records match existing resources
by id, then externalId, then userName (Users) or displayName (Groups); new ones are created with
the id they were exported with, so group member references survive a round trip. Created
accounts are unmanaged until an IdP adopts them (see service/adoption.py).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from provisor.errors import ScimError
from provisor.ids import new_resource_id
from provisor.schema.coerce import coerce_resource
from provisor.service.batch import PreparedCreate, prepare_create
from provisor.service.context import RequestContext
from provisor.service.projection import Projection
from provisor.service.render import render
from provisor.service.resources import ResourceService
from provisor.service.sources import BadLine, Record
from provisor.storage import batch as batch_store
from provisor.storage import members as member_store
from provisor.storage import transfer as store
from provisor.storage.batch import NewRow
from provisor.storage.indexing import normalise
from provisor.storage.interfaces import Batches, Members, Transfer
from provisor.storage.transactions import read_transaction

#: Storage as the contract names it (storage/interfaces/).
_store: Transfer = store
_batches: Batches = batch_store
_members: Members = member_store

#: Resource types in dependency order: users before the groups that contain them.
ORDER = ("User", "Group")
CHUNK = 1000
NAME_ATTR = {"User": "userName", "Group": "displayName"}


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    bad: list[BadLine] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.bad


@dataclass
class _Planned:
    record: Record
    prepared: PreparedCreate
    match: str | None = None


Progress = Callable[[int], None]


def _uuid_or_none(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


class Importer:
    def __init__(self, services: dict[str, ResourceService], ctx: RequestContext) -> None:
        self.services = services
        self.ctx = ctx

    def validate(
        self, records: Iterable[Record], type_of: Callable[[Record], str]
    ) -> tuple[dict[str, list[_Planned]], list[BadLine]]:
        """Coerce every record as POST would; duplicates of a unique name within the file are bad."""
        planned: dict[str, list[_Planned]] = {name: [] for name in ORDER}
        bad: list[BadLine] = []
        first_seen: dict[tuple[str, str], int] = {}
        for record in records:
            rt_name = type_of(record)
            service = self.services.get(rt_name)
            if service is None:
                bad.append(BadLine(record.line, f"unknown resource type {rt_name!r}"))
                continue
            try:
                prepared = prepare_create(
                    service,
                    self.ctx,
                    record.doc,
                    resource_id=_uuid_or_none(record.doc.get("id")),
                    managed=False,
                )
            except ScimError as error:
                bad.append(BadLine(record.line, error.detail))
                continue
            name = self._name(service, prepared.row.doc)
            if name is not None:
                key = (rt_name, name)
                if key in first_seen:
                    bad.append(
                        BadLine(
                            record.line, f"duplicate {NAME_ATTR[rt_name]}, first at line {first_seen[key]}"
                        )
                    )
                    continue
                first_seen[key] = record.line
            planned[rt_name].append(_Planned(record, prepared))
        return planned, bad

    def _name(self, service: ResourceService, doc: dict[str, Any]) -> str | None:
        attr_name = NAME_ATTR.get(service.rt.name)
        attribute = service.rt.schema.attribute(attr_name) if attr_name else None
        value = doc.get(attr_name) if attr_name else None
        return normalise(attribute, value) if attribute is not None and isinstance(value, str) else None

    async def match(self, rt_name: str, items: Sequence[_Planned]) -> None:
        """Set `match` to the id of the existing resource each item updates (None: create)."""
        service = self.services[rt_name]
        tenant = self.ctx.tenant_id
        async with read_transaction(service.engine) as conn:
            for start in range(0, len(items), CHUNK):
                chunk = items[start : start + CHUNK]
                ids = [i.prepared.row.id for i in chunk]
                taken = await _members.resource_types_of(conn, tenant, ids)
                externals = [
                    str(i.prepared.row.doc["externalId"]) for i in chunk if "externalId" in i.prepared.row.doc
                ]
                by_external = await _batches.find_by_index(conn, tenant, rt_name, "externalId", externals)
                names = [n for n in (self._name(service, i.prepared.row.doc) for i in chunk) if n is not None]
                by_name = await _batches.find_by_index(conn, tenant, rt_name, NAME_ATTR[rt_name], names)
                for item in chunk:
                    doc = item.prepared.row.doc
                    rid = item.prepared.row.id
                    name = self._name(service, doc)
                    if taken.get(rid) == rt_name:
                        item.match = rid
                    elif "externalId" in doc and str(doc["externalId"]) in by_external:
                        item.match = by_external[str(doc["externalId"])]
                    elif name is not None and name in by_name:
                        item.match = by_name[name]
                    elif rid in taken:
                        # The exported id belongs to another resource here: create under a new id.
                        item.prepared = PreparedCreate(
                            NewRow(new_resource_id(), doc, item.prepared.row.index, managed=False),
                            item.prepared.extra,
                        )

    async def load(self, rt_name: str, items: Sequence[_Planned]) -> dict[str, tuple[Any, set[str]]]:
        """Current documents (and group member ids) of the matched resources, in chunks."""
        service = self.services[rt_name]
        ids = [i.match for i in items if i.match is not None]
        out: dict[str, tuple[Any, set[str]]] = {}
        async with read_transaction(service.engine) as conn:
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                rows = await _store.resources_by_ids(conn, self.ctx.tenant_id, rt_name, chunk)
                members = (
                    await _store.member_ids_of_groups(conn, self.ctx.tenant_id, chunk)
                    if rt_name == "Group"
                    else {}
                )
                for row in rows:
                    out[row.id] = (row, members.get(row.id, set()))
        return out

    def differs(self, rt_name: str, item: _Planned, state: tuple[Any, set[str]] | None) -> bool:
        """Would replacing the matched resource with this record change it?"""
        if state is None:
            return True
        current, members = state
        service = self.services[rt_name]
        try:
            doc, extra = service.split_body(
                coerce_resource(service.registry, service.rt, item.record.doc, existing=current.doc)
            )
        except ScimError:
            return True
        if doc != current.doc:
            return True
        if rt_name != "Group":
            return False
        return members != {m.get("value") for m in extra or () if isinstance(m, dict)}

    async def write(
        self, rt_name: str, items: Sequence[_Planned], report: ImportReport, progress: Progress
    ) -> None:
        service = self.services[rt_name]
        creates = [i for i in items if i.match is None]
        for start in range(0, len(creates), CHUNK):
            chunk = creates[start : start + CHUNK]
            try:
                await service.create_many(self.ctx, [i.prepared for i in chunk])
                report.created += len(chunk)
            except ScimError:
                for item in chunk:  # replay one by one: each record is written whole or not at all
                    try:
                        await service.create_many(self.ctx, [item.prepared])
                        report.created += 1
                    except ScimError as error:
                        report.bad.append(BadLine(item.record.line, error.detail))
            progress(len(chunk))
        projection = Projection(service.registry, service.rt, None, None)
        states = await self.load(rt_name, items)
        for item in items:
            if item.match is None:
                continue
            try:
                if self.differs(rt_name, item, states.get(item.match)):
                    await service.replace(self.ctx, item.match, item.record.doc, projection, None)
                    report.updated += 1
                else:
                    report.unchanged += 1
            except ScimError as error:
                report.bad.append(BadLine(item.record.line, error.detail))
            progress(1)

    async def run(
        self,
        records: Iterable[Record | BadLine],
        type_of: Callable[[Record], str],
        *,
        dry_run: bool,
        strict: bool,
        progress: Progress,
    ) -> ImportReport:
        items = list(records)
        report = ImportReport(dry_run=dry_run)
        report.bad = [i for i in items if isinstance(i, BadLine)]
        planned, bad = self.validate([i for i in items if isinstance(i, Record)], type_of)
        report.bad.extend(bad)
        report.bad.sort(key=lambda b: b.line)
        if strict and report.bad:
            return report
        for rt_name in ORDER:
            await self.match(rt_name, planned[rt_name])
        if dry_run:
            for rt_name in ORDER:
                states = await self.load(rt_name, planned[rt_name])
                for item in planned[rt_name]:
                    if item.match is None:
                        report.created += 1
                    elif self.differs(rt_name, item, states.get(item.match)):
                        report.updated += 1
                    else:
                        report.unchanged += 1
                    progress(1)
            return report
        for rt_name in ORDER:
            await self.write(rt_name, planned[rt_name], report, progress)
            if strict and report.bad:
                break
        report.bad.sort(key=lambda b: b.line)
        return report


async def export_resources(
    service: ResourceService, ctx: RequestContext, *, page: int = CHUNK
) -> AsyncIterator[dict[str, Any]]:
    """Every resource of one type, rendered as GET would (Users without the derived `groups`)."""
    excluded = "groups" if service.rt.name == "User" else None
    projection = Projection(service.registry, service.rt, None, excluded)
    offset = 0
    while True:
        async with read_transaction(service.engine) as conn:
            rows = await _store.page_by_creation(
                conn, ctx.tenant_id, service.rt.name, offset=offset, limit=page
            )
            derived = await service.derived(conn, ctx, [r.id for r in rows], projection) if rows else {}
        for row in rows:
            yield projection.apply(render(service.rt, row, ctx.base_url, derived.get(row.id)))
        if len(rows) < page:
            return
        offset += page
