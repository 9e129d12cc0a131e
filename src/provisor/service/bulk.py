"""Running a Bulk job (RFC 7644 section 3.7): each operation is its own transaction, except runs of
independent POSTs, which are written in one batch and replayed one by one if the batch fails.

Results come back in request order. `failOnErrors` stops the job after that many errors; later
operations are neither performed nor reported.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from provisor.errors import ScimError
from provisor.protocol.bulk import (
    BULK_RESPONSE,
    PREFIX,
    BulkOperation,
    BulkRequest,
    strip_references,
    substitute,
)
from provisor.protocol.bulk_plan import plan
from provisor.service.batch import PreparedCreate, prepare_create
from provisor.service.context import RequestContext
from provisor.service.errors import database_fault
from provisor.service.projection import Projection
from provisor.service.render import etag, location
from provisor.service.resources import ResourceService
from provisor.service.tombstones import tombstoning
from provisor.storage.resources import StoredResource

log = logging.getLogger("provisor.bulk")

#: Largest run of POSTs written in one transaction.
BATCH_SIZE = 1000


class Unresolved(Exception):
    """A bulkId reference that cannot be replaced by an id."""

    def __init__(self, error: ScimError) -> None:
        super().__init__(error.detail)
        self.error = error


@dataclass
class _Pending:
    op: BulkOperation
    data: dict[str, Any]
    prepared: PreparedCreate


def _unexpected(op: BulkOperation) -> ScimError:
    log.exception("bulk operation %d (%s %s) failed unexpectedly", op.index, op.method, op.path)
    return ScimError(500, "internal server error in this operation")


class BulkJob:
    """The state of one Bulk request while it runs."""

    def __init__(
        self, ctx: RequestContext, request: BulkRequest, services: dict[str, ResourceService]
    ) -> None:
        self.ctx = ctx
        self.request = request
        self.services = services
        self.defined = {
            op.bulk_id for op in request.operations if op.method == "POST" and op.bulk_id and op.error is None
        }
        self.resolved: dict[str, str] = {}
        self.failed: set[str] = set()
        self.results: dict[int, dict[str, Any]] = {}
        self.errors = 0
        self.stopped = False
        self.pending: list[_Pending] = []
        #: The bulkIds the queued POSTs define, kept with the queue: an operation that names one
        #: must wait for the queue to be written, and rebuilding this set per operation made a run
        #: of 1,000 POSTs quadratic.
        self.pending_ids: set[str] = set()
        self.projections = {
            segment: Projection(s.registry, s.rt, None, None) for segment, s in services.items()
        }

    # ---- results -----------------------------------------------------------------------------

    def _result(self, op: BulkOperation, status: int, loc: str | None, version: int | None) -> None:
        result: dict[str, Any] = {"method": op.method}
        if op.bulk_id is not None:
            result["bulkId"] = op.bulk_id
        if loc is not None:
            result["location"] = loc
        if version is not None:
            result["version"] = etag(version)
        result["status"] = str(status)
        self.results[op.index] = result

    def _fail(self, op: BulkOperation, error: ScimError, resource_id: str | None = None) -> None:
        result: dict[str, Any] = {"method": op.method or "UNKNOWN"}
        if op.bulk_id is not None:
            result["bulkId"] = op.bulk_id
        if resource_id is not None and op.method != "POST":
            result["location"] = location(self.ctx.base_url, self.services[op.segment].rt, resource_id)
        result["status"] = str(error.status)
        result["response"] = error.to_body()
        self.results[op.index] = result
        if op.method == "POST" and op.bulk_id is not None:
            self.failed.add(op.bulk_id)
            self.resolved.pop(op.bulk_id, None)
        self.errors += 1
        limit = self.request.fail_on_errors
        if limit is not None and self.errors >= limit:
            self.stopped = True

    def _created(self, op: BulkOperation, stored: StoredResource) -> None:
        if op.bulk_id is not None:
            self.resolved[op.bulk_id] = stored.id
        rt = self.services[op.segment].rt
        self._result(op, 201, location(self.ctx.base_url, rt, stored.id), stored.version)

    # ---- references --------------------------------------------------------------------------

    def _lookup(self, keep: frozenset[str] = frozenset()) -> Any:
        def lookup(bulk_id: str) -> str:
            if bulk_id in keep:
                return PREFIX + bulk_id
            if bulk_id in self.resolved:
                return self.resolved[bulk_id]
            if bulk_id in self.failed:
                detail = f"bulkId:{bulk_id} cannot be resolved: the operation that defines it failed"
            else:
                detail = f"bulkId:{bulk_id} cannot be resolved: no POST in this request defines it"
            raise Unresolved(ScimError(409, detail, "invalidValue"))

        return lookup

    def _resolve(self, op: BulkOperation, keep: frozenset[str] = frozenset()) -> tuple[Any, str | None]:
        lookup = self._lookup(keep)
        data = substitute(op.data, lookup) if op.references else op.data
        resource_id = op.resource_id
        if resource_id is not None and resource_id.startswith(PREFIX):
            resource_id = lookup(resource_id[len(PREFIX) :])
        return data, resource_id

    # ---- running -----------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        for step in plan(self.request.operations):
            if self.stopped:
                break
            if step.cyclic:
                await self._flush()
                if not self.stopped:
                    await self._cycle(step.ops)
            else:
                await self._step(step.ops[0])
        await self._flush()
        log.info(
            "bulk job for tenant %s: %d operations, %d performed, %d errors in %.3fs",
            self.ctx.tenant_id,
            len(self.request.operations),
            len(self.results),
            self.errors,
            time.perf_counter() - started,
        )
        return {
            "schemas": [BULK_RESPONSE],
            "Operations": [self.results[i] for i in sorted(self.results)],
        }

    async def _step(self, op: BulkOperation) -> None:
        if op.error is not None or op.method != "POST" or not op.references.isdisjoint(self.pending_ids):
            await self._flush()
            if self.stopped:
                return
        if op.error is not None:
            self._fail(op, op.error)
            return
        try:
            data, resource_id = self._resolve(op)
        except Unresolved as exc:
            await self._flush()
            if not self.stopped:
                self._fail(op, exc.error)
            return
        if op.method == "POST":
            await self._queue(op, data)
        else:
            await self._write(op, data, resource_id)

    async def _queue(self, op: BulkOperation, data: dict[str, Any]) -> None:
        service = self.services[op.segment]
        try:
            prepared = prepare_create(service, self.ctx, data)
        except ScimError as error:
            await self._flush()
            if not self.stopped:
                self._fail(op, error)
            return
        if self.pending and self.pending[0].op.segment != op.segment:
            await self._flush()
            if self.stopped:
                return
        self.pending.append(_Pending(op, data, prepared))
        if op.bulk_id is not None:
            self.pending_ids.add(op.bulk_id)
        if len(self.pending) >= BATCH_SIZE:
            await self._flush()

    async def _flush(self) -> None:
        """Write the queued POSTs: one transaction when they all succeed, else one each."""
        pending, self.pending = self.pending, []
        self.pending_ids = set()
        if not pending:
            return
        # Under the tombstone policy each POST may be a restore (service/tombstones.py): one by one.
        if len(pending) > 1 and not tombstoning(self.ctx):
            service = self.services[pending[0].op.segment]
            try:
                stored = await service.create_many(self.ctx, [p.prepared for p in pending])
            except ScimError:
                log.debug("bulk batch of %d failed; replaying one by one", len(pending))
            else:
                for item, resource in zip(pending, stored, strict=True):
                    self._created(item.op, resource)
                    await service.deliver_write_only(
                        self.ctx, resource.id, service.write_only.in_body(item.data)
                    )
                return
        for item in pending:
            if self.stopped:
                return
            await self._create_one(item.op, item.data)

    async def _create_one(self, op: BulkOperation, data: dict[str, Any]) -> StoredResource | None:
        service = self.services[op.segment]
        try:
            stored, _ = await service.create(self.ctx, data, self.projections[op.segment])
        except ScimError as error:
            self._fail(op, error)
            return None
        except Exception as exc:
            self._fail(op, database_fault(exc) or _unexpected(op))
            return None
        self._created(op, stored)
        return stored

    async def _write(self, op: BulkOperation, data: Any, resource_id: str | None) -> None:
        assert resource_id is not None
        service = self.services[op.segment]
        rt = service.rt
        try:
            if op.method == "PUT":
                stored, _ = await service.replace(
                    self.ctx, resource_id, data, self.projections[op.segment], op.version
                )
                self._result(op, 200, location(self.ctx.base_url, rt, resource_id), stored.version)
            elif op.method == "PATCH":
                stored, _ = await service.patch(self.ctx, resource_id, data, None, op.version)
                status = 204 if _patch_no_content(self.ctx, service) else 200
                self._result(op, status, location(self.ctx.base_url, rt, resource_id), stored.version)
            else:
                await service.delete(self.ctx, resource_id, op.version)
                self._result(op, 204, location(self.ctx.base_url, rt, resource_id), None)
        except ScimError as error:
            self._fail(op, error, resource_id)
        except Exception as exc:
            self._fail(op, database_fault(exc) or _unexpected(op), resource_id)

    async def _cycle(self, ops: Sequence[BulkOperation]) -> None:
        """RFC 7644 3.7.1: create the resources without their circular references, then put the
        references back. If that fails, undo the cycle and answer 409 for its operations."""
        cycle_ids = frozenset(op.bulk_id for op in ops if op.bulk_id is not None)
        created: list[tuple[BulkOperation, StoredResource, Any, bool]] = []
        for op in ops:
            try:
                data, _ = self._resolve(op, keep=cycle_ids)
            except Unresolved as exc:
                self._fail(op, exc.error)
                continue
            stripped, changed = strip_references(data, cycle_ids)
            stored = await self._create_one(op, stripped)
            if stored is not None:
                created.append((op, stored, data, changed))
        problem: ScimError | None = None
        for op, stored, data, changed in created:
            if not changed or problem is not None:
                continue
            service = self.services[op.segment]
            try:
                full = substitute(data, self._lookup())
                stored, _ = await service.replace(
                    self.ctx, stored.id, full, self.projections[op.segment], None
                )
                self._created(op, stored)
            except Unresolved as exc:
                problem = exc.error
            except ScimError as error:
                problem = error
        if problem is None:
            return
        for op, stored, _, _ in created:
            with contextlib.suppress(ScimError):
                await self.services[op.segment].delete(self.ctx, stored.id, None)
            numbers = ", ".join(str(o.index) for o in ops)
            detail = (
                f"circular bulkId references (operations {numbers}) could not be resolved: {problem.detail}"
            )
            self._fail(op, ScimError(409, detail, problem.scim_type))


def _patch_no_content(ctx: RequestContext, service: ResourceService) -> bool:
    """Mirror the single-resource PATCH answer (DESIGN.md section 4): Groups 204, Users 200."""
    key = f"patch_204_{service.rt.endpoint.strip('/').lower()}"
    return bool(ctx.setting(key, service.rt.name == "Group"))


async def run_bulk(
    ctx: RequestContext, request: BulkRequest, services: dict[str, ResourceService]
) -> dict[str, Any]:
    """Run a parsed BulkRequest; `services` are keyed by lower-cased endpoint segment."""
    return await BulkJob(ctx, request, services).run()
