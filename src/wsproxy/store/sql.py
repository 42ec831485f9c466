"""Read-only SQL on an open recording: statements checked before they run, results as typed
rows that turn into JSON without losing their types."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import uuid
from dataclasses import dataclass
from typing import Any

import duckdb
import msgspec

from wsproxy.core.errors import first_line
from wsproxy.store.files import StoreError

ALLOWED = frozenset({"SELECT", "EXPLAIN"})


class QueryError(StoreError):
    """SQL that cannot run here (a write, a syntax error): one line saying why."""


@dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        """Rows as JSON-ready objects: numbers stay numbers, JSON columns nested, times ISO 8601,
        blobs base64."""
        converters = [_json_value_for(kind) for kind in self.types]
        return [{name: convert(value) for name, convert, value in zip(self.columns, converters, row)}
                for row in self.rows]


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"the SQL does not parse: {first_line(exc)}") from None
    if not statements:
        raise QueryError("no SQL statement given")
    for statement in statements:
        kind = statement.type.name
        if kind not in ALLOWED:
            raise QueryError(f"wsproxy query is read-only: {kind} statements are refused "
                             f"(open a copy of the file with duckdb to change it)")


def execute(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None,
            limit: int | None = None) -> QueryResult:
    """Run read-only SQL on an open connection (every statement checked first; the last one's rows)."""
    check_read_only(con, sql)
    try:
        result = con.execute(sql, params or [])
        rows = result.fetchmany(limit) if limit is not None else result.fetchall()
    except duckdb.Error as exc:
        raise QueryError(f"the query failed: {first_line(exc)}") from None
    description = result.description or []
    return QueryResult([d[0] for d in description], [str(d[1]) for d in description], rows)


def _json_value_for(kind: str) -> Any:
    if kind == "JSON":
        return lambda v: None if v is None else msgspec.json.decode(v)
    return json_value


def json_value(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value
