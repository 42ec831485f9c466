"""User SQL on an open recording, and only there: every statement checked by the parser first
(``store.sql_guard``), run on a cursor of its own inside a read-only transaction of a database whose
external access is off, within a time limit, and interrupted when its asker goes away or wsproxy
stops. Results are typed rows that turn into JSON without losing their types."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import decimal
import heapq
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import msgspec

from wsproxy.core.errors import first_line
from wsproxy.store.files import create_reader_views
from wsproxy.store.sql_guard import QueryError, check_query

__all__ = ["SQL_TIMEOUT", "QueryError", "QueryResult", "UserSql", "json_value"]

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
        return [{name: convert(value) for name, convert, value in zip(self.columns, converters, row, strict=True)}
                for row in self.rows]


@dataclass(eq=False)
class _Run:
    """One statement on one cursor; ``stopped`` says why it was interrupted, if it was."""
    cursor: duckdb.DuckDBPyConnection
    active: bool = True
    stopped: StopReason | None = None


@dataclass(eq=False)
class _Ticket:
    """An asker's hold on its statement, which may not have started yet when the asker goes away."""
    run: _Run | None = None
    gone: bool = False


class UserSql:
    """Where a user's SQL runs on one database: ``run`` (blocking) or ``await query``.

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
        self._deadlines = _Deadlines(lambda run: self._stop(run, "timeout"))
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
        """Check and run ``sql``; the rows of its last statement (at most ``limit``). ``timeout`` may
        only shorten this runner's own limit. A worker thread runs it while this one waits: DuckDB
        notices Ctrl-C only once a statement ends, while a waiting thread gets it at once and
        interrupts the statement."""
        ticket = _Ticket()
        future = self._pool().submit(self._run, sql, params, limit, timeout, ticket)
        try:
            return future.result()
        except KeyboardInterrupt:
            self._leave(ticket)
            raise

    async def query(self, sql: str, params: list[Any] | None = None, limit: int | None = None,
                    timeout: float | None = None) -> QueryResult:
        """``run`` in a thread of its own (DuckDB releases the GIL while it works); cancelling the
        awaiting task (the asker went away) interrupts the statement."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(CURSORS)
        async with self._slots:
            ticket = _Ticket()
            future = asyncio.get_running_loop().run_in_executor(
                self._pool(), self._run, sql, params, limit, timeout, ticket)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                self._leave(ticket)
                raise

    def _run(self, sql: str, params: list[Any] | None, limit: int | None, timeout: float | None,
             ticket: _Ticket) -> QueryResult:
        check_query(sql)
        run = self._begin()
        with self._lock:
            ticket.run = run
            if ticket.gone:
                run.stopped = "gone"
        seconds = min(self.timeout, timeout) if timeout else self.timeout
        self._deadlines.add(run, time.monotonic() + seconds)
        try:
            return _execute(run, sql, params, limit)
        except duckdb.InterruptException:
            raise QueryError(_stopped_message(run.stopped or "stopping", seconds)) from None
        except duckdb.Error as exc:
            raise QueryError(f"the query failed: {first_line(exc)}") from None
        finally:
            self._end(run)

    # --- threads, cursors, and stopping what runs on them ---

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(CURSORS, thread_name_prefix="wsproxy-sql")
            return self._executor

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
        with self._lock:  # from here no interrupt reaches the cursor, so none can land in its ROLLBACK
            run.active = False
            self._runs.discard(run)
        reusable = _rolled_back(run.cursor)
        with self._lock:
            if self._stopping or not reusable:
                run.cursor.close()
            else:
                self._idle.append(run.cursor)

    def _leave(self, ticket: _Ticket) -> None:
        """The asker went away: stop its statement, now or as soon as it starts."""
        with self._lock:
            ticket.gone = True
            run = ticket.run
        if run is not None:
            self._stop(run, "gone")

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


class _Deadlines:
    """One thread that interrupts each run at its deadline (a ``threading.Timer`` per statement cost
    0.5 ms, more than the statements of a web page take). A run that ended before its deadline is
    left to expire harmlessly: ``UserSql._stop`` touches only active runs."""

    def __init__(self, expire: Callable[[_Run], None]) -> None:
        self._expire = expire
        self._due: list[tuple[float, int, _Run]] = []
        self._added = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, run: _Run, at: float) -> None:
        with self._wake:
            self._added += 1
            heapq.heappush(self._due, (at, self._added, run))
            self._wake.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="wsproxy-sql-deadlines", daemon=True)
                self._thread.start()

    def _watch(self) -> None:
        while True:
            with self._wake:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._wake.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, _, run = heapq.heappop(self._due)
            self._expire(run)


def _execute(run: _Run, sql: str, params: list[Any] | None, limit: int | None) -> QueryResult:
    """``sql`` in a read-only transaction: even a statement the guard let through cannot write."""
    cursor = run.cursor
    cursor.execute("BEGIN TRANSACTION READ ONLY")  # ended by UserSql._end
    if run.stopped is not None:  # stopped before it began: DuckDB forgets an interrupt when a statement starts
        raise duckdb.InterruptException("stopped before it began")
    result = cursor.execute(sql, params or [])
    rows = result.fetchmany(limit + 1) if limit is not None else result.fetchall()
    description = result.description or []
    truncated = limit is not None and len(rows) > limit
    return QueryResult([d[0] for d in description], [str(d[1]) for d in description],
                       rows[:limit] if truncated else rows, truncated)


def _rolled_back(cursor: duckdb.DuckDBPyConnection) -> bool:
    """End the statement's transaction; False when the cursor cannot be trusted with another one (an
    interrupt that came as the statement finished can fail the ROLLBACK and leave the transaction
    aborted: every later statement on that cursor would fail). Closing such a cursor rolls it back."""
    try:
        cursor.execute("ROLLBACK")
        return True
    except duckdb.Error:  # an interrupted or failed BEGIN, or an interrupted ROLLBACK
        return False


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
