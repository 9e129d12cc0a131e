"""SCIM filters: parse once into an immutable AST, then walk it (bind, evaluate).

The SQL compiler walks the same AST but lives in `provisor.storage.filter_sql`: SQL exists only
under storage, and importing this package must not load SQLAlchemy.
"""

from provisor.filter.binder import bind, bind_path, resolve_patch_path
from provisor.filter.evaluate import matches, matches_element
from provisor.filter.parser import parse_filter, parse_path

__all__ = [
    "bind",
    "bind_path",
    "matches",
    "matches_element",
    "parse_filter",
    "parse_path",
    "resolve_patch_path",
]
