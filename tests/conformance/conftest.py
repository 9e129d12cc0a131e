"""Conformance suites published by identity providers, run against Provisor.

The suites are data kept outside the repository, in `<repo root>/../shared/conformance/` (CI clones the repo
with a copy of `shared/` beside it); they are referenced there, never copied in. Every suite test records its
counts with `record_property("conformance", ...)`; the terminal summary in the root
conftest (the only one pytest-xdist's controller loads) prints one line per suite run and a total.
"""

from __future__ import annotations
