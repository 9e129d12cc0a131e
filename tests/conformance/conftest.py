"""Conformance suites published by identity providers, run against Provisor.

The suites are data kept outside the repository, in `<repo root>/../shared/conformance/` (CI clones the repo
with a copy of `shared/` beside it); they are referenced there, never copied in. So this directory is left
out of `make test` (`norecursedirs` in pyproject.toml) and run by `make conformance`, which names it and
refuses to start when the suites are missing. Every suite test records its counts with
`record_property("conformance", ...)`; the terminal summary in the root conftest (the only one
pytest-xdist's controller loads; see summary.py) prints one line per suite run and a total that is green
only if every test here passed.
"""

from __future__ import annotations
