"""What one database kind implements: the `Backend` the per-database packages fill in.

PostgreSQL's and SQLite's code live in their own packages (`storage/postgres/`,
`storage/sqlite/`), each exporting one `Backend` whose parts implement the same interfaces.
`storage/kind.py` picks the one serving an engine; the portable storage modules call that part
and never compare dialect names themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

# members and the rest
from provisor.storage.members_sql import MemberStatements


@dataclass(frozen=True)
class Backend:
    """One database kind's implementations of storage's per-database interfaces.

    Each field is one concern's implementation, typed by the Protocol that the portable module
    of that concern declares (the contract); the per-database packages fill them in.
    """

    name: str

    # members and the rest
    #: Group membership statements (storage/members.py).
    members: MemberStatements
