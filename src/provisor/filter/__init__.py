"""SCIM filters: parse once into an immutable AST, then walk it (bind, evaluate, compile to SQL)."""

from provisor.filter.binder import bind, bind_path, resolve_patch_path
from provisor.filter.evaluate import matches, matches_element
from provisor.filter.parser import parse_filter, parse_path
from provisor.filter.sql import SqlContext, compile_filter, sort_expression

__all__ = [
    "SqlContext",
    "bind",
    "bind_path",
    "compile_filter",
    "matches",
    "matches_element",
    "parse_filter",
    "parse_path",
    "resolve_patch_path",
    "sort_expression",
]
