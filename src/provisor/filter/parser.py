"""Hand-written tokenizer and recursive-descent parser for RFC 7644 section 3.4.2.2 filters.

Why by hand: error messages must name the offending position, IdP dialects (Entra's unquoted
values) need leniency a generated grammar would reject, and any input must end in a SCIM 400,
never in another exception. Positions in messages are 0-based character offsets.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from provisor.errors import ScimError, invalid_filter, invalid_path
from provisor.filter.ast import (
    COMPARE_OPS,
    And,
    Attr,
    Compare,
    Filter,
    Literal,
    Not,
    Or,
    PatchPath,
    Present,
    ValuePath,
)

_PUNCT = "()[]"
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_NAME = re.compile(r"\$ref|[A-Za-z][A-Za-z0-9_\-]*")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


@dataclass(frozen=True)
class _Token:
    kind: str  # "(" ")" "[" "]" "str" "word" "end"
    text: str  # the word, the decoded string, or the punctuation
    pos: int


def _describe(tok: _Token) -> str:
    if tok.kind == "end":
        return "end of input"
    if tok.kind == "str":
        return "string"
    return repr(tok.text)


def _tokenize(text: str, error: Callable[[str], ScimError]) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _PUNCT:
            tokens.append(_Token(ch, ch, i))
            i += 1
        elif ch == '"':
            value, end = _read_string(text, i, error)
            tokens.append(_Token("str", value, i))
            i = end
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _PUNCT and text[i] != '"':
                i += 1
            tokens.append(_Token("word", text[start:i], start))
    tokens.append(_Token("end", "", n))
    return tokens


def _read_string(text: str, start: int, error: Callable[[str], ScimError]) -> tuple[str, int]:
    """Decode a JSON string starting at the opening quote; return (value, index after it)."""
    out: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= n:
            break
        esc = text[i + 1]
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        elif esc == "u":
            digits = text[i + 2 : i + 6]
            if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise error(f"invalid \\u escape at position {i}")
            code = int(digits, 16)
            i += 6
            if 0xD800 <= code < 0xDC00 and text[i : i + 2] == "\\u":
                low = text[i + 2 : i + 6]
                if len(low) == 4 and all(c in "0123456789abcdefABCDEF" for c in low):
                    low_code = int(low, 16)
                    if 0xDC00 <= low_code < 0xE000:
                        code = 0x10000 + ((code - 0xD800) << 10) + (low_code - 0xDC00)
                        i += 6
            if 0xD800 <= code < 0xE000 or code == 0:
                raise error(f"invalid character escape at position {i - 6}")
            out.append(chr(code))
        else:
            raise error(f"invalid escape '\\{esc}' at position {i}")
    raise error(f"unterminated string starting at position {start}")


def _literal(tok: _Token) -> Literal:
    """A comparison value: JSON literal, or (Entra leniency) any other bare word as a string."""
    if tok.kind == "str":
        return tok.text
    lowered = tok.text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    match = _NUMBER.fullmatch(tok.text)
    if match:
        if match.group(1) is None and match.group(2) is None:
            return int(tok.text)
        try:
            return Decimal(tok.text)
        except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
            return tok.text
    return tok.text


def _balanced(cls: type[And] | type[Or], items: list[Filter]) -> Filter:
    """Join same-precedence operands as a balanced tree: `and`/`or` are associative, and a long
    chain then stays shallow for every recursive visitor (and for SQL engines' depth limits)."""
    if len(items) == 1:
        return items[0]
    mid = len(items) // 2
    return cls(_balanced(cls, items[:mid]), _balanced(cls, items[mid:]))


class _Parser:
    def __init__(self, text: str, error: Callable[[str], ScimError], max_depth: int) -> None:
        self.error = error
        self.tokens = _tokenize(text, error)
        self.i = 0
        self.depth = 0
        self.max_depth = max_depth

    # ---- token helpers -----------------------------------------------------------------------

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def is_keyword(self, word: str, offset: int = 0) -> bool:
        tok = self.tokens[min(self.i + offset, len(self.tokens) - 1)]
        return tok.kind == "word" and tok.text.lower() == word

    def unexpected(self, expected: str | None = None) -> ScimError:
        tok = self.tok
        tail = f", expected {expected}" if expected else ""
        return self.error(f"unexpected {_describe(tok)} at position {tok.pos}{tail}")

    def expect(self, kind: str) -> _Token:
        if self.tok.kind != kind:
            raise self.unexpected(repr(kind))
        return self.advance()

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise self.error(f"filter nested too deeply at position {self.tok.pos} (max {self.max_depth})")

    # ---- grammar -----------------------------------------------------------------------------

    def parse_filter(self) -> Filter:
        if self.tok.kind == "end":
            raise self.error("empty filter")
        node = self.or_expr()
        if self.tok.kind != "end":
            raise self.unexpected("'and', 'or' or end of input")
        return node

    def or_expr(self) -> Filter:
        items = [self.and_expr()]
        while self.is_keyword("or"):
            self.advance()
            items.append(self.and_expr())
        return _balanced(Or, items)

    def and_expr(self) -> Filter:
        items = [self.unary()]
        while self.is_keyword("and"):
            self.advance()
            items.append(self.unary())
        return _balanced(And, items)

    def unary(self) -> Filter:
        nxt = self.tokens[min(self.i + 1, len(self.tokens) - 1)]
        # `not` is a keyword when followed by "(" (RFC) or, leniently, by another expression; an
        # attribute that happens to be called "not" is still followed by an operator.
        if self.is_keyword("not") and (
            nxt.kind == "(" or (nxt.kind == "word" and nxt.text.lower() not in COMPARE_OPS | {"pr"})
        ):
            self.advance()
            self.enter()
            inner = self.unary()
            self.depth -= 1
            return Not(inner)
        if self.tok.kind == "(":
            self.advance()
            self.enter()
            inner = self.or_expr()
            self.depth -= 1
            self.expect(")")
            return inner
        return self.attr_expr()

    def attr_expr(self) -> Filter:
        attr = self.attr_path()
        if self.tok.kind == "[":
            inner = self.value_filter()
            if self.tok.kind == "word" and self.tok.text.startswith("."):
                sub = self.sub_attr()
                return ValuePath(attr, And(inner, self.condition(Attr(None, sub))))
            return ValuePath(attr, inner)
        return self.condition(attr)

    def value_filter(self) -> Filter:
        self.expect("[")
        self.enter()
        if self.tok.kind == "]":
            raise self.unexpected("a filter")
        inner = self.or_expr()
        self.depth -= 1
        self.expect("]")
        return inner

    def sub_attr(self) -> str:
        tok = self.advance()
        name = tok.text[1:]
        if not _NAME.fullmatch(name):
            raise self.error(f"invalid sub-attribute {tok.text!r} at position {tok.pos}")
        return name

    def condition(self, attr: Attr) -> Filter:
        tok = self.tok
        if tok.kind != "word":
            raise self.unexpected("an operator")
        op = tok.text.lower()
        if op == "pr":
            self.advance()
            return Present(attr)
        if op not in COMPARE_OPS:
            raise self.error(f"unknown operator {tok.text!r} at position {tok.pos}")
        self.advance()
        value = self.tok
        if value.kind not in ("str", "word"):
            raise self.unexpected("a value")
        self.advance()
        return Compare(attr, op, _literal(value))

    def attr_path(self) -> Attr:
        tok = self.tok
        if tok.kind != "word":
            raise self.unexpected("an attribute path")
        self.advance()
        attr = _split_attr(tok.text)
        if attr is None:
            raise self.error(f"invalid attribute path {tok.text!r} at position {tok.pos}")
        return attr


def _split_attr(text: str) -> Attr | None:
    """`[urn ":"] name ["." sub]`; the URN is everything up to the last ':' before the name."""
    urn: str | None = None
    rest = text
    if text[:4].lower() == "urn:":
        urn, sep, rest = text.rpartition(":")
        if not sep or not urn or urn.lower() == "urn":
            return None
    name, dot, sub = rest.partition(".")
    if not _NAME.fullmatch(name) or (dot and not _NAME.fullmatch(sub)):
        return None
    return Attr(urn, name, sub or None)


def _check_characters(text: str, error: Callable[[str], ScimError]) -> None:
    """NUL and lone surrogates cannot be stored or bound by the databases; reject them up front."""
    for pos, ch in enumerate(text):
        if ch == "\x00" or "\ud800" <= ch <= "\udfff":
            raise error(f"invalid character at position {pos}")


#: `name op "string"`, ASCII spaces around, no escape, NUL or surrogate in the string: the filter
#: an IdP sends before nearly every create (`userName eq "..."`), parsed without the tokenizer.
_SIMPLE_COMPARE = re.compile(r' *([A-Za-z][A-Za-z0-9_\-]*) +([A-Za-z]{2}) +"([^"\\\x00\ud800-\udfff]*)" *')


def parse_filter(text: str, *, max_length: int = 4096, max_depth: int = 32) -> Filter:
    """Parse a SCIM filter into the AST; any malformed input raises ScimError 400 invalidFilter."""
    if not isinstance(text, str):
        raise invalid_filter("filter must be a string")
    if len(text) > max_length:
        raise invalid_filter(f"filter longer than {max_length} characters")
    simple = _SIMPLE_COMPARE.fullmatch(text)
    if simple is not None:
        name, op, value = simple.groups()
        op = op.lower()
        if op in COMPARE_OPS:  # the AST the parser gives (tests/unit/test_filter_parser.py)
            return Compare(Attr(None, name, None), op, value)
    _check_characters(text, invalid_filter)
    return _Parser(text, invalid_filter, max_depth).parse_filter()


def parse_path(text: str, *, max_length: int = 4096, max_depth: int = 32) -> PatchPath:
    """Parse a PATCH path (`attrPath / valuePath [subAttr]`); errors are 400 invalidPath.

    Short paths repeat endlessly (`active`, `displayName`, `members`): their (immutable) ASTs are
    cached. Errors are not, so a bad path is refused every time it comes.
    """
    if isinstance(text, str) and len(text) <= _CACHED_PATH_LENGTH and len(text) <= max_length:
        return _parse_path_cached(text, max_depth)
    return _parse_path(text, max_length=max_length, max_depth=max_depth)


_CACHED_PATH_LENGTH = 200


@functools.lru_cache(maxsize=2048)
def _parse_path_cached(text: str, max_depth: int) -> PatchPath:
    return _parse_path(text, max_length=_CACHED_PATH_LENGTH, max_depth=max_depth)


def _parse_path(text: str, *, max_length: int, max_depth: int) -> PatchPath:
    if not isinstance(text, str):
        raise invalid_path("path must be a string")
    if len(text) > max_length:
        raise invalid_path(f"path longer than {max_length} characters")
    _check_characters(text, invalid_path)
    parser = _Parser(text, invalid_path, max_depth)
    if parser.tok.kind == "end":
        raise invalid_path("empty path")
    attr = parser.attr_path()
    inner: Filter | None = None
    sub: str | None = None
    if parser.tok.kind == "[":
        if attr.sub is not None:
            raise invalid_path(f"value filter on sub-attribute {attr} is not allowed")
        inner = parser.value_filter()
        if parser.tok.kind == "word" and parser.tok.text.startswith("."):
            sub = parser.sub_attr()
    if parser.tok.kind != "end":
        raise parser.unexpected("end of path")
    return PatchPath(attr, inner, sub)


__all__ = ["parse_filter", "parse_path"]
