"""The execution order of a Bulk job: request order, except that a POST runs before the first
operation that references its bulkId; operations that reference each other form one cyclic step.

Strongly connected components (Tarjan, iterative so a long chain cannot exhaust the stack) give
both at once: components come out dependencies first, and a component of more than one operation
(or one that references itself) is a reference cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from provisor.protocol.bulk import BulkOperation


@dataclass(frozen=True)
class Step:
    ops: tuple[BulkOperation, ...]
    cyclic: bool


def dependencies(operations: Sequence[BulkOperation]) -> dict[int, list[int]]:
    """Operation index -> indexes of the POSTs whose bulkIds it references."""
    defines = {
        op.bulk_id: op.index
        for op in operations
        if op.method == "POST" and op.bulk_id is not None and op.error is None
    }
    return {op.index: sorted({defines[ref] for ref in op.references if ref in defines}) for op in operations}


def plan(operations: Sequence[BulkOperation]) -> list[Step]:
    deps = dependencies(operations)
    by_index = {op.index: op for op in operations}
    counter = 0
    number: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    steps: list[Step] = []
    for root in sorted(by_index):
        if root in number:
            continue
        work: list[tuple[int, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                number[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = deps[node]
            if child < len(successors):
                work.append((node, child + 1))
                nxt = successors[child]
                if nxt not in number:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], number[nxt])
                continue
            if low[node] == number[node]:
                component: list[int] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                component.sort()
                cyclic = len(component) > 1 or node in deps[node]
                steps.append(Step(tuple(by_index[i] for i in component), cyclic))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return steps
