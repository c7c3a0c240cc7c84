"""The run filter language: a tokenizer and a hand-written recursive-descent parser.

A filter is a boolean expression over a run's fields, for example::

    hparams.lr < 0.01 and metrics.val/loss < 0.2 and labels contains "baseline" and status = "Succeeded"

Grammar (keywords are case-insensitive)::

    filter     := or_expr EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | primary
    primary    := "(" or_expr ")" | comparison
    comparison := field ("=" | "!=" | "<" | "<=" | ">" | ">=" | "contains") value
    field      := "name" | "status" | "labels" | "started" | "ended" | "created" | "updated"
                | "hparams." path | "metrics." metric_key
    path       := segment ("." segment)*        segment: a bare word or a `back-quoted` word
    value      := NUMBER | STRING | "true" | "false" | "null" | "now" [("-" | "+") DURATION]
    DURATION   := NUMBER ("s" | "m" | "h" | "d")

``metrics.val/loss`` is the latest value of metric ``loss`` of type ``val`` (the run's
lowest rank that logged it). The parser only builds the tree (:class:`Compare`,
:class:`BoolOp`, :class:`Not`); :mod:`em_dist.server.search_sql` turns it into SQL.
Every error is a :class:`FilterError` carrying the 0-based character position, so the
API answers 400 with where the filter went wrong.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Union

TIME_FIELDS = frozenset({"started", "ended", "created", "updated"})
PLAIN_FIELDS = frozenset({"name", "status", "labels"}) | TIME_FIELDS
_KEYWORDS = frozenset({"and", "or", "not", "contains", "true", "false", "null", "now"})
_DURATION_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_FILTER_CHARS = 4000
MAX_DEPTH = 64


class FilterError(ValueError):
    """A filter that does not parse or compare sensibly; ``position`` is the 0-based offset."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"filter error at position {position}: {message}")
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Token:
    """One lexical unit: ``kind`` is word, number, string, duration, op, lparen, rparen or eof."""

    kind: str
    text: str
    value: object
    pos: int


@dataclass(frozen=True)
class Field:
    """What a comparison reads: ``kind`` is a plain field name, ``hparams`` or ``metrics``."""

    kind: str
    path: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return ".".join((self.kind, *self.path)) if self.path else self.kind


@dataclass(frozen=True)
class Compare:
    """``field op value``; a time literal arrives as an aware UTC datetime."""

    field: Field
    op: str
    value: object
    pos: int


@dataclass(frozen=True)
class BoolOp:
    """``and``/``or`` over two or more operands."""

    op: str
    operands: tuple["Node", ...]


@dataclass(frozen=True)
class Not:
    operand: "Node"


Node = Union[Compare, BoolOp, Not]

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<quoted>`[^`]*`)
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
      | (?P<duration>\d+(?:\.\d+)?[smhd](?![A-Za-z0-9_]))
      | (?P<op><=|>=|!=|==|=|<|>)
      | (?P<lparen>\()
      | (?P<rparen>\))
      | (?P<minus>-)
      | (?P<plus>\+)
      | (?P<word>[A-Za-z_][A-Za-z0-9_./:-]*)
      | (?P<dot>\.)
    """,
    re.VERBOSE,
)
_NOW_WORD = re.compile(r"(?i)now([-+])(\d+(?:\.\d+)?)([smhd])")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def _unquote(text: str, pos: int) -> str:
    out, i, body = [], 0, text[1:-1]
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise FilterError(f"unknown escape \\{nxt} in a string", pos + 1 + i)
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``eof`` token; raises FilterError on a stray character."""
    tokens: list[Token] = []
    if "\x00" in text:  # no database compares a NUL
        raise FilterError("a NUL character", text.index("\x00"))
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] in "\"'`":
                raise FilterError("unterminated string", pos)
            raise FilterError(f"unexpected character {text[pos]!r}", pos)
        kind, raw = m.lastgroup or "", m.group()
        if kind == "string":
            tokens.append(Token("string", raw, _unquote(raw, pos), pos))
        elif kind == "quoted":
            tokens.append(Token("word", raw, raw[1:-1], pos))
        elif kind == "number":
            number = float(raw)
            if not math.isfinite(number):  # a 310-digit integer or 1e400: no float64 holds it
                raise FilterError(f"the number {raw[:40]!r} is out of range (a float64 holds up to ±1.8e308)", pos)
            tokens.append(Token("number", raw, int(raw) if re.fullmatch(r"[-+]?\d+", raw) else number, pos))
        elif kind == "duration":
            tokens.append(Token("duration", raw, float(raw[:-1]) * _DURATION_S[raw[-1]], pos))
        elif kind == "op":
            tokens.append(Token("op", raw, "=" if raw == "==" else raw, pos))
        elif kind != "ws":
            tokens.append(Token(kind, raw, raw, pos))
        pos = m.end()
    tokens.append(Token("eof", "", None, len(text)))
    return tokens


def parse_time(text: str, pos: int) -> dt.datetime:
    """An ISO date or date-time as an aware UTC datetime (naive means UTC)."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"{text!r} is not an ISO date or date-time (e.g. \"2026-11-30\" or \"2026-11-30T12:00\")",
                          pos) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc)


class _Parser:
    def __init__(self, text: str, now: dt.datetime) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.now = now
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "word" and token.text.lower() == word:
            self.i += 1
            return True
        return False

    def expect_end(self) -> None:
        token = self.peek()
        if token.kind != "eof":
            raise FilterError(f"expected 'and', 'or' or the end of the filter, found {token.text!r}", token.pos)

    def or_expr(self) -> Node:
        operands = [self.and_expr()]
        while self.keyword("or"):
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def and_expr(self) -> Node:
        operands = [self.not_expr()]
        while self.keyword("and"):
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def not_expr(self) -> Node:
        if self.keyword("not"):
            return Not(self.nested(self.not_expr))
        return self.primary()

    def nested(self, parse):  # type: ignore[no-untyped-def]
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"the filter nests deeper than {MAX_DEPTH} levels", self.peek().pos)
        try:
            return parse()
        finally:
            self.depth -= 1

    def primary(self) -> Node:
        token = self.peek()
        if token.kind == "lparen":
            self.take()
            node = self.nested(self.or_expr)
            close = self.take()
            if close.kind != "rparen":
                raise FilterError(f"expected ')' to close the '(' at position {token.pos}, found "
                                  f"{close.text or 'the end of the filter'!r}", close.pos)
            return node
        return self.comparison()

    def field(self) -> Field:
        token = self.take()
        if token.kind != "word" or token.text.lower() in _KEYWORDS:
            found = token.text or "the end of the filter"
            raise FilterError(f"expected a field (name, status, labels, started, ended, created, updated, "
                              f"hparams.<key> or metrics.<type>/<name>), found {found!r}", token.pos)
        word = str(token.value)
        quoted = token.text.startswith("`")
        head, dot, rest = word.partition(".")
        if not quoted and head.lower() in PLAIN_FIELDS and not dot:
            return Field(head.lower())
        if not quoted and head.lower() == "metrics":
            key = rest
            if not dot or not rest:  # metrics.`odd name`
                key = self._quoted_tail(token)
            if "/" not in key:
                raise FilterError(f"a metric is metrics.<type>/<name>, e.g. metrics.val/loss; got {key!r}", token.pos)
            return Field("metrics", tuple(key.split("/", 1)))
        if not quoted and head.lower() == "hparams":
            path = [p for p in rest.split(".") if p] if rest else []
            if not rest or word.endswith("."):
                path.append(self._quoted_tail(token))
            return Field("hparams", tuple(path))
        raise FilterError(f"unknown field {word!r}: use name, status, labels, started, ended, created, updated, "
                          f"hparams.<key> or metrics.<type>/<name>", token.pos)

    def _quoted_tail(self, after: Token) -> str:
        token = self.take()
        if token.kind == "dot":
            token = self.take()
        if token.kind != "word" or not token.text.startswith("`"):
            raise FilterError(f"expected a key after {after.text!r}", token.pos)
        return str(token.value)

    def value(self, field: Field) -> object:
        token = self.take()
        if token.kind in ("number", "string"):
            value = token.value
        elif token.kind == "word" and token.text.lower() in ("true", "false"):
            value = token.text.lower() == "true"
        elif token.kind == "word" and token.text.lower() == "null":
            value = None
        elif token.kind == "word" and token.text.lower() == "now":
            value = self.relative_now()
        elif token.kind == "word" and _NOW_WORD.fullmatch(token.text):
            sign, amount, unit = _NOW_WORD.fullmatch(token.text).groups()  # type: ignore[union-attr]
            delta = dt.timedelta(seconds=float(amount) * _DURATION_S[unit.lower()])
            value = self.now - delta if sign == "-" else self.now + delta
        else:
            raise FilterError(f"expected a value (number, \"string\", true, false, null or now - 2h), found "
                              f"{token.text or 'the end of the filter'!r}", token.pos)
        if field.kind in TIME_FIELDS:
            if isinstance(value, str):
                return parse_time(value, token.pos)
            if not isinstance(value, dt.datetime) and value is not None:
                raise FilterError(f"{field.label} compares with a date (\"2026-11-30\") or now - <duration>", token.pos)
        elif isinstance(value, dt.datetime):
            raise FilterError(f"'now' compares only with started, ended, created or updated, not {field.label}", token.pos)
        return value

    def relative_now(self) -> dt.datetime:
        sign = self.peek()
        if sign.kind not in ("minus", "plus"):
            return self.now
        self.take()
        amount = self.take()
        if amount.kind != "duration":
            raise FilterError(f"expected a duration such as 30m, 2h or 7d after 'now {sign.text}', found "
                              f"{amount.text or 'the end of the filter'!r}", amount.pos)
        delta = dt.timedelta(seconds=float(amount.value))  # type: ignore[arg-type]
        return self.now - delta if sign.kind == "minus" else self.now + delta

    def comparison(self) -> Compare:
        field = self.field()
        token = self.take()
        if token.kind == "op":
            op = str(token.value)
        elif token.kind == "word" and token.text.lower() == "contains":
            op = "contains"
        else:
            raise FilterError(f"expected an operator (=, !=, <, <=, >, >=, contains) after {field.label}, found "
                              f"{token.text or 'the end of the filter'!r}", token.pos)
        value_pos = self.peek().pos
        value = self.value(field)
        if op == "contains" and not isinstance(value, str):
            raise FilterError("contains takes a \"string\"", value_pos)
        if op == "contains" and field.kind not in ("labels", "name", "hparams"):
            raise FilterError(f"contains applies to labels, name or a string hparam, not {field.label}", token.pos)
        if field.kind == "labels" and op not in ("contains",):
            raise FilterError("labels takes 'contains', e.g. labels contains \"baseline\"", token.pos)
        if op in ("<", "<=", ">", ">=") and (value is None or isinstance(value, bool)):
            raise FilterError(f"{op} needs a number, string or date, not {value!r}", value_pos)
        if field.kind == "metrics" and not (isinstance(value, (int, float)) and not isinstance(value, bool)) \
                and value is not None:
            raise FilterError(f"{field.label} is a number; compare it with a number", value_pos)
        return Compare(field, op, value, token.pos)


def parse(text: str, *, now: dt.datetime | None = None) -> Node | None:
    """The tree of a filter; None for an empty filter. Raises :class:`FilterError`."""
    if len(text) > MAX_FILTER_CHARS:
        raise FilterError(f"a filter is at most {MAX_FILTER_CHARS} characters", MAX_FILTER_CHARS)
    if not text.strip():
        return None
    parser = _Parser(text, now or dt.datetime.now(dt.timezone.utc))
    node = parser.or_expr()
    parser.expect_end()
    return node
