"""What a user's SQL may be, decided by DuckDB's own parser (never by words): one or more queries
(SELECT, WITH, FROM-first, VALUES, DESCRIBE, SHOW, SUMMARIZE) that read the recording, and nothing
else. ``json_serialize_sql`` serializes only SELECT statements, so anything else (EXPLAIN ANALYZE of a
DELETE, COPY, ATTACH, SET, PRAGMA, CALL ...) is refused before it runs; the tree it gives is then walked
for what a query can still do besides reading: table functions that read files, log, profile,
checkpoint or run other SQL, scalar functions that change state, and file paths used as tables.

A filter's WHERE (the web view's ``where=``) must moreover be one expression on its own: it may not
close the parentheses it is put in, add clauses or bind the page's parameters.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from typing import Any

import duckdb
import msgspec

from wsproxy.store.files import StoreError

# Table functions a query may use: generators, JSON walkers and the catalog's own description. Every
# other one (read_*, glob, query, query_table, enable_logging, checkpoint, duckdb_secrets, parquet_*,
# json_execute_serialized_sql, arrow/pandas scans ...) is refused: they read files, change settings,
# write logs or run SQL of their own.
SAFE_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "json_each", "json_tree", "repeat", "repeat_row",
    "histogram", "histogram_values", "summary", "pg_timezone_names", "icu_calendar_names",
    "duckdb_columns", "duckdb_constraints", "duckdb_dependencies", "duckdb_functions", "duckdb_indexes",
    "duckdb_keywords", "duckdb_schemas", "duckdb_settings", "duckdb_tables", "duckdb_types", "duckdb_views",
    "duckdb_memory", "pragma_table_info", "pragma_storage_info", "pragma_database_size", "pragma_version",
    "pragma_show", "pragma_platform",
})
# Scalar functions with an effect beyond their answer: sequences, the session's random seed, the log,
# and sleeping (which a time limit cannot interrupt).
UNSAFE_FUNCTIONS = frozenset({"nextval", "setval", "currval", "setseed", "write_log", "sleep_ms", "pg_sleep"})
FILE_NAME_MARKS = ("/", "\\", ".", ":")  # a table named like a file is DuckDB reading that file


class QueryError(StoreError):
    """SQL that cannot run here (a write, a syntax error, a file read, a time limit): one line saying why."""


_parser_lock = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None


def _serialize(sql: str) -> dict[str, Any]:
    """DuckDB's parse tree of ``sql`` as JSON (in a database of its own that holds nothing)."""
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(":memory:", config={"enable_external_access": False})
        row = _parser.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    assert row is not None
    tree: dict[str, Any] = msgspec.json.decode(row[0])
    return tree


def _statement_kinds(sql: str) -> list[str]:
    with _parser_lock:
        assert _parser is not None
        return [statement.type.name for statement in _parser.extract_statements(sql)]


def parse_queries(sql: str) -> list[dict[str, Any]]:
    """The parse trees of ``sql``'s statements, each a query; a ``QueryError`` for anything else."""
    if not sql.strip():
        raise QueryError("no SQL statement given")
    tree = _serialize(sql)
    if tree.get("error"):
        message = str(tree.get("error_message", ""))
        if "Only SELECT" in message:
            kinds = sorted({kind for kind in _statement_kinds(sql) if kind != "SELECT"})
            raise QueryError(f"read-only: {', '.join(kinds) or 'those'} statements are refused; only queries run "
                             f"here (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE)")
        raise QueryError(f"the SQL does not parse: {(message.splitlines() or [''])[0]}")
    statements: list[dict[str, Any]] = tree.get("statements", [])
    if not statements:
        raise QueryError("no SQL statement given")
    return statements


@functools.lru_cache(maxsize=512)  # the web view asks the same statements again and again (a refusal is not kept)
def check_query(sql: str) -> None:
    """Refuse ``sql`` unless every statement in it only reads the recording."""
    for statement in parse_queries(sql):
        for node in _nodes(statement):
            _check_node(node)


def check_where(where: str) -> None:
    """Refuse a filter's WHERE unless it is one expression that reads the recording, with no parameters."""
    try:
        statements = parse_queries(f"SELECT\n{where}\n")
    except QueryError as exc:
        raise QueryError(f"the WHERE {_one_expression}: {exc}") from None
    node = statements[0]["node"] if len(statements) == 1 else {}
    alone = (node.get("type") == "SELECT_NODE" and len(node.get("select_list", [])) == 1
             and node.get("from_table", {}).get("type") == "EMPTY" and not node.get("modifiers")
             and not node.get("cte_map", {}).get("map") and not node.get("group_expressions")
             and all(node.get(key) is None for key in ("where_clause", "having", "qualify", "sample")))
    if not alone:
        raise QueryError(f"the WHERE {_one_expression}")
    for part in _nodes(node):
        if part.get("class") == "PARAMETER":
            raise QueryError("the WHERE may not use parameters ($1, ?): write the value itself")
        _check_node(part)


_one_expression = "must be one condition over the frames (f.kind = 'text', seq > 10 ...), not more SQL"


def _check_node(node: dict[str, Any]) -> None:
    kind = node.get("type")
    if kind == "TABLE_FUNCTION":
        name = str(node.get("function", {}).get("function_name", "")).lower()
        if name not in SAFE_TABLE_FUNCTIONS:
            raise QueryError(f"{name}() is refused: SQL here reads the recording only (no files, settings, "
                             f"logs or SQL of its own)")
    elif kind == "BASE_TABLE":
        name = str(node.get("table_name", ""))
        if any(mark in name for mark in FILE_NAME_MARKS):
            raise QueryError(f"{name!r} names a file: SQL here reads the recording only")
    elif node.get("class") == "FUNCTION":
        name = str(node.get("function_name", "")).lower()
        if name in UNSAFE_FUNCTIONS:
            raise QueryError(f"{name}() is refused: SQL here only reads")


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every object in a parse tree, depth first."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
