"""``wsproxy query`` and the read side of every inspecting command: SQL over a recording, read-only,
also while ``wsproxy record`` is writing it (through the recorder's live query endpoint)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import msgspec

from wsproxy.errors import first_line
from wsproxy.store import StoreError, open_recording

ALLOWED = frozenset({"SELECT", "EXPLAIN"})


class QueryError(StoreError):
    """SQL that cannot run here (a write, a syntax error): one line saying why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 1


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


def run_query(path: Path, sql: str, params: list[Any] | None = None) -> QueryResult:
    """SQL on a recording: directly from the file, or from the recorder writing it right now."""
    try:
        con = open_recording(path)
    except StoreError as exc:
        if "is being written" not in str(exc):
            raise
        from wsproxy.livequery import query_live
        return query_live(path, sql, params)
    try:
        return execute(con, sql, params)
    finally:
        con.close()


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
