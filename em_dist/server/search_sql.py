"""Turn a parsed run filter (:mod:`em_dist.server.search`) into a SQLAlchemy WHERE clause.

The filter runs inside the database, so searching 10,000 runs reads no row into Python
that does not match. JSON columns are read with each dialect's own functions (SQLite's
``json_type``/``json_extract``/``json_each``, PostgreSQL's ``json_typeof``/
``json_extract_path_text``/``jsonb @>``): a comparison only holds when the stored value
has the literal's JSON type, so ``hparams.lr < 0.01`` skips a run whose ``lr`` is a
string instead of failing the query. A comparison with a missing key or metric is false
(also for ``!=``); ``= null`` matches a missing key.

The status a filter sees is the honest one (:mod:`em_dist.server.liveness`): a live run
silent for longer than the server's limit is ``Failed``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import cast as cast_value

from sqlalchemy import Boolean, Float, String, and_, case, cast, false, func, literal, not_, or_, select, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from em_dist.server.liveness import status_expression
from em_dist.server.models import MetricSeries, Run
from em_dist.server.search import BoolOp, Compare, FilterError, Node, Not

_COMPARE = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class SqlContext:
    """What compiling needs besides the tree: the database dialect and the lost-run cutoff."""

    dialect: str
    lost_before: dt.datetime


def like_escape(text: str) -> str:
    """``text`` with LIKE wildcards escaped by ``\\`` (use ``escape='\\\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(column: ColumnElement, needle: str) -> ColumnElement:
    return func.lower(column).like(f"%{like_escape(needle.lower())}%", escape="\\")


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_ .:/+-]*")


def _sqlite_path(path: tuple[str, ...]) -> str:
    return "$" + "".join('."' + p + '"' for p in path)


def _sqlite_lookup(path: tuple[str, ...]) -> tuple[ColumnElement, ColumnElement]:
    """SQLite's ``(json type, value)`` of ``hparams.<path>``.

    A path of plain ASCII keys goes through ``json_extract`` (fast); any other key is matched
    by ``json_each``, which compares keys as text after unescaping: ``json_extract`` compares
    the stored spelling, so a key stored as ``"\\u00fc..."`` or holding a quote was never found.
    """
    if all(_PLAIN_KEY.fullmatch(p) for p in path):
        where = _sqlite_path(path)
        return func.json_type(Run.hparams, where), func.json_extract(Run.hparams, where)
    doc: ColumnElement = Run.hparams.expression
    for key in path[:-1]:
        each = func.json_each(doc).table_valued("key", "value", "type")
        doc = select(each.c.value).where(each.c.key == key, each.c.type == "object").limit(1).scalar_subquery()
    last = func.json_each(doc).table_valued("key", "value", "type")
    kind = select(last.c.type).where(last.c.key == path[-1]).limit(1).scalar_subquery()
    last = func.json_each(doc).table_valued("key", "value", "type")
    raw = select(last.c.value).where(last.c.key == path[-1]).limit(1).scalar_subquery()
    return kind, raw


def _hparam(ctx: SqlContext, node: Compare) -> ColumnElement:
    """A comparison on ``hparams.<path>``: ``kind`` is the stored JSON type, ``text`` its value as text
    (for booleans ``true``/``false``), ``number`` its value when it is a number."""
    path, value, op = node.field.path, node.value, node.op
    if not path:
        return false()
    kind: ColumnElement
    number: ColumnElement
    text: ColumnElement
    boolean: ColumnElement
    is_number: ColumnElement
    is_string: ColumnElement
    if ctx.dialect == "sqlite":
        kind, raw = _sqlite_lookup(path)
        is_number, is_string = kind.in_(("integer", "real")), kind == "text"
        number, text, boolean = raw, raw, kind  # json_type says 'true' or 'false' for booleans
    else:
        kind = func.json_typeof(func.json_extract_path(Run.hparams, *path))
        text = func.json_extract_path_text(Run.hparams, *path)
        is_number, is_string = kind == "number", kind == "string"
        number = case((is_number, cast(text, Float)), else_=None)  # never cast a string: PostgreSQL would fail
        boolean = case((kind == "boolean", text), else_=None)
    if value is None:
        missing = or_(kind.is_(None), kind == "null")
        return missing if op == "=" else not_(missing)
    if isinstance(value, bool):
        if op not in ("=", "!="):
            raise FilterError("true/false compare with = or !=", node.pos)
        return boolean == ("true" if value == (op == "=") else "false")
    if isinstance(value, (int, float)):
        return and_(is_number, _COMPARE[op](number, float(value)))
    if op == "contains":
        return and_(is_string, _contains(text, str(value)))
    return and_(is_string, _COMPARE[op](cast(text, String), str(value)))


def _labels(ctx: SqlContext, label: str) -> ColumnElement:
    if ctx.dialect == "sqlite":
        each = func.json_each(Run.labels).table_valued("value")
        return select(literal(1)).select_from(each).where(each.c.value == label).exists()
    return cast(Run.labels, JSONB).contains(cast(func.json_build_array(label), JSONB))


def latest_metric(type_: str, name: str) -> ColumnElement:
    """The run's latest value of one metric (its lowest rank that logged it), as a scalar subquery."""
    return (
        select(MetricSeries.last_value)
        .where(MetricSeries.run_id == Run.id, MetricSeries.type == type_, MetricSeries.name == name)
        .order_by(MetricSeries.rank)
        .limit(1)
        .correlate(Run)
        .scalar_subquery()
    )


def _time_column(kind: str) -> ColumnElement:
    return {"started": Run.start_timestamp, "ended": Run.end_timestamp, "created": Run.created,
            "updated": Run.updated}[kind].expression


def _compare(ctx: SqlContext, node: Compare) -> ColumnElement:
    kind, op, value = node.field.kind, node.op, node.value
    if kind == "hparams":
        return _hparam(ctx, node)
    if kind == "labels":
        return _labels(ctx, str(value))
    if kind == "metrics":
        column = latest_metric(*node.field.path)
        if value is None:
            return column.is_(None) if op == "=" else column.is_not(None)
        return _COMPARE[op](column, float(value))  # type: ignore[arg-type]
    if kind in ("name", "status"):
        column = Run.name.expression if kind == "name" else status_expression(ctx.lost_before)
        if value is None:
            return false() if op == "=" else true()
        if op == "contains":
            return _contains(column, str(value))
        if not isinstance(value, str):
            raise FilterError(f"{kind} compares with a \"string\"", node.pos)
        if kind == "status" and op in ("=", "!="):  # statuses match case-insensitively
            return _COMPARE[op](func.lower(column), value.lower())
        return _COMPARE[op](column, value)
    column = _time_column(kind)
    if value is None:
        return column.is_(None) if op == "=" else column.is_not(None)
    if kind in ("started", "ended"):  # ISO-8601 text in UTC, compared as text
        return _COMPARE[op](column, cast_value(dt.datetime, value).isoformat())
    return _COMPARE[op](column, value)


def compile_filter(node: Node | None, ctx: SqlContext) -> ColumnElement:
    """The WHERE clause of a parsed filter (``true`` for no filter)."""
    if node is None:
        return true()
    if isinstance(node, Compare):  # SQL NULL (a missing key) becomes false, so "not" turns it true
        return func.coalesce(_compare(ctx, node), false(), type_=Boolean)
    if isinstance(node, Not):
        return not_(compile_filter(node.operand, ctx))
    if isinstance(node, BoolOp):
        parts = [compile_filter(n, ctx) for n in node.operands]
        return and_(*parts) if node.op == "and" else or_(*parts)
    raise TypeError(f"not a filter node: {node!r}")
