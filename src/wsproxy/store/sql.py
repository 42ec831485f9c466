"""User SQL on an open recording, and only there: every statement checked by the parser first
(``store.sql_guard``), run on a cursor of its own inside a read-only transaction of a database whose
external access is off, within a time limit, and interrupted when its asker goes away or wsproxy
stops. Results are typed rows that turn into JSON without losing their types."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import decimal
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import msgspec

from wsproxy.core.errors import first_line
from wsproxy.store.files import create_reader_views
from wsproxy.store.sql_guard import QueryError, check_query

__all__ = ["QueryError", "QueryResult", "UserSql", "json_value", "SQL_TIMEOUT"]

SQL_TIMEOUT = 10.0  # seconds a user's statement may run (--sql-timeout)
CURSORS = 4  # statements answered at once by one UserSql; more wait for a free cursor
StopReason = Literal["timeout", "gone", "stopping", "checkpoint"]


@dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False  # more rows than asked for were there

    def records(self) -> list[dict[str, Any]]:
        """Rows as JSON-ready objects: numbers stay numbers, JSON columns nested, times ISO 8601,
        blobs base64."""
        converters = [_json_value_for(kind) for kind in self.types]
        return [{name: convert(value) for name, convert, value in zip(self.columns, converters, row)}
                for row in self.rows]


@dataclass(eq=False)
class _Run:
    """One statement on one cursor; ``stopped`` says why it was interrupted, if it was."""
    cursor: duckdb.DuckDBPyConnection
    active: bool = True
    stopped: StopReason | None = None


class UserSql:
    """Where a user's SQL runs on one database: ``run`` (in the calling thread) or ``await query``.

    Args:
        connection: the database (a file opened read-only, or the recorder's; each statement gets a
            cursor of its own, never this connection).
        timeout: seconds a statement may run before it is interrupted.
        owned: close ``connection`` with ``close()``, and lock its configuration (a reader's own file).
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection, *, timeout: float = SQL_TIMEOUT,
                 owned: bool = False) -> None:
        if timeout <= 0:
            raise QueryError(f"--sql-timeout must be more than 0 seconds, not {timeout:g}")
        self.timeout = timeout
        self._connection = connection
        self._owned = owned
        self._lock = threading.Lock()
        self._idle: list[duckdb.DuckDBPyConnection] = []
        self._runs: set[_Run] = set()
        self._stopping = False
        self._executor: ThreadPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None
        # No file, extension or network from SQL, for every connection of this database (the recorder's
        # writer needs none; it cannot be turned back on while the database is open). Said on a cursor:
        # the connection itself may be busy in the writer's thread.
        settings = connection.cursor()
        try:
            settings.execute("SET enable_external_access = false")
            if owned:
                settings.execute("SET lock_configuration = true")
        finally:
            settings.close()

    # --- running a statement ---

    def run(self, sql: str, params: list[Any] | None = None, limit: int | None = None,
            timeout: float | None = None) -> QueryResult:
        """Check and run ``sql`` in this thread; the rows of its last statement (at most ``limit``).
        ``timeout`` may only shorten this runner's own limit."""
        return self._run(sql, params, limit, timeout, None)

    async def query(self, sql: str, params: list[Any] | None = None, limit: int | None = None,
                    timeout: float | None = None) -> QueryResult:
        """``run`` in a thread of its own (DuckDB releases the GIL while it works); cancelling the
        awaiting task (the asker went away) interrupts the statement."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(CURSORS)
            self._executor = ThreadPoolExecutor(CURSORS, thread_name_prefix="wsproxy-sql")
        async with self._slots:
            started: list[_Run] = []
            future = asyncio.get_running_loop().run_in_executor(
                self._executor, self._run, sql, params, limit, timeout, started.append)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                for run in started:
                    self._stop(run, "gone")
                raise

    def _run(self, sql: str, params: list[Any] | None, limit: int | None, timeout: float | None,
             started: Callable[[_Run], None] | None) -> QueryResult:
        check_query(sql)
        run = self._begin()
        if started is not None:
            started(run)
        seconds = min(self.timeout, timeout) if timeout else self.timeout
        timer = threading.Timer(seconds, self._stop, (run, "timeout"))
        timer.daemon = True
        timer.start()
        try:
            return _execute(run.cursor, sql, params, limit)
        except duckdb.InterruptException:
            if run.stopped is None:
                raise  # Ctrl-C in this thread: the error edge reports it
            raise QueryError(_stopped_message(run.stopped, seconds)) from None
        except duckdb.Error as exc:
            raise QueryError(f"the query failed: {first_line(exc)}") from None
        finally:
            timer.cancel()
            self._end(run)

    # --- cursors, and stopping what runs on them ---

    def _begin(self) -> _Run:
        with self._lock:
            if self._stopping:
                raise QueryError("wsproxy is stopping: the query was not run")
            cursor = self._idle.pop() if self._idle else None
        if cursor is None:
            cursor = self._connection.cursor()
            create_reader_views(cursor)
        run = _Run(cursor)
        with self._lock:
            self._runs.add(run)
        return run

    def _end(self, run: _Run) -> None:
        with self._lock:
            run.active = False
            self._runs.discard(run)
            if self._stopping:
                run.cursor.close()
            else:
                self._idle.append(run.cursor)

    def _stop(self, run: _Run, reason: StopReason) -> None:
        with self._lock:  # a finished run's cursor may already serve another statement: leave it be
            if run.active and run.stopped is None:
                run.stopped = reason
                run.cursor.interrupt()

    @property
    def running(self) -> int:
        """Statements running right now."""
        with self._lock:
            return len(self._runs)

    def interrupt_all(self, reason: StopReason = "stopping") -> None:
        """Stop every running statement; while wsproxy is stopping, refuse new ones too. Thread-safe."""
        with self._lock:
            self._stopping = self._stopping or reason == "stopping"
            runs = list(self._runs)
        for run in runs:
            self._stop(run, reason)

    def close(self) -> None:
        """Stop what runs, close the cursors (and the database, when owned)."""
        self.interrupt_all()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            idle, self._idle = self._idle, []
        for cursor in idle:
            cursor.close()
        if self._owned:
            self._connection.close()


def _execute(cursor: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None,
             limit: int | None) -> QueryResult:
    """``sql`` in a read-only transaction: even a statement the guard let through cannot write."""
    cursor.execute("BEGIN TRANSACTION READ ONLY")
    try:
        result = cursor.execute(sql, params or [])
        rows = result.fetchmany(limit + 1) if limit is not None else result.fetchall()
        description = result.description or []
    finally:
        try:
            cursor.execute("ROLLBACK")
        except duckdb.Error:  # an interrupted statement has ended the transaction already
            pass
    truncated = limit is not None and len(rows) > limit
    return QueryResult([d[0] for d in description], [str(d[1]) for d in description],
                       rows[:limit] if truncated else rows, truncated)


def _stopped_message(reason: StopReason, seconds: float) -> str:
    if reason == "timeout":
        return (f"the query ran longer than {seconds:g} s and was stopped: narrow it (a WHERE on conn_id or "
                f"ts, a LIMIT) or allow more time with --sql-timeout")
    if reason == "gone":
        return "the query was stopped: whoever asked for it went away"
    if reason == "checkpoint":
        return ("the query was stopped so that the recording could checkpoint (it held back the recorder): "
                "narrow it, or query the file once recording ends")
    return "the query was stopped: wsproxy is stopping"


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
