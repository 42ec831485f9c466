"""The recorder: frames from the relay -> one writer thread -> DuckDB, in batches.

The relay appends rows (a list append under a short lock, no I/O); a writer thread takes
the whole backlog at least every ``commit_interval`` seconds, or as soon as a batch's worth
(an eighth of the high-water mark) is waiting, and writes it in one transaction as a
columnar Arrow batch (executemany could not keep up: see docs/performance.md).

Nothing is dropped: when the backlog passes ``high_water`` rows or ``high_water_bytes``, or would put
the recording more than ``MAX_LAG_SECONDS`` behind, ``wait_for_capacity`` makes the relay's pumps wait,
so back pressure reaches the sockets (not spilling to disk: the recording stays the single source of
truth and memory stays bounded, at most the batch being written plus one high-water mark).
When writing fails, ``error`` is set, ``on_failed`` is called and the relay stops relaying
rather than pass traffic it cannot record.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from wsproxy import __version__
from wsproxy.clock import now_us
from wsproxy.core.errors import first_line
from wsproxy.core.rows import ConnectionClosed, ConnectionOpened, FrameRow, InjectionRow, ViolationRow
from wsproxy.record.priority import lower_thread_priority
from wsproxy.record.rotation import FolderPlan, Segments
from wsproxy.store.batches import split_by_size, warm_up, write_batch, write_patiently
from wsproxy.store.files import RecordingError, close_checkpoint, open_for_writing
from wsproxy.store.parts import LARGE_FRAME_BYTES, Parts

# DuckDB holds a transaction's rows in its memory until it commits: a backlog of large messages
# (150 clients sending 16 MB each at once) failed to commit within MEMORY_LIMIT and stopped the relay.
# The writer commits a large backlog in parts of at most this many message bytes.
MAX_TRANSACTION_BYTES = 64 * 1024 * 1024
# The writer thread runs at a lower CPU priority than the relay: on a busy machine a write (10-30 ms
# of CPU every 200 ms) otherwise takes the core the relay needs, and messages wait for it. At a fixed
# 5,000 msg/s the p99 added by the proxy fell from 1.5 to 0.9 ms; throughput is unchanged, because
# when the writer falls behind back pressure idles the relay (docs/performance.md).
WRITER_NICENESS = 5
# Back pressure also holds the relay while the oldest unwritten row is older than this, or while the
# backlog would take longer than this to write at the writer's recent speed, so that the recording
# stays within about a second of the traffic (``Recorder.behind``).
MAX_LAG_SECONDS = 0.5
FAST_WRITE_DISABLES = "zstd,dict_fsst"  # DuckDB compression methods the writer turns off under load
# DuckDB checkpoints when its write-ahead log passes 16 MB, unless a reader's transaction still needs what
# a checkpoint would change (a connection's close is an UPDATE): then the log grows for as long as that
# query runs. Past this size the writer stops the queries of the live recording and checkpoints itself.
WAL_LIMIT_BYTES = 32 * 1024 * 1024


@dataclass
class RecorderStats:
    rows_written: int = 0
    frames_received: int = 0
    batches: int = 0
    last_batch_rows: int = 0
    write_seconds: float = 0.0
    max_lag_seconds: float = 0.0
    violations: int = 0
    injections: int = 0  # actions --inject rules carried out
    write_retries: int = 0  # writes retried because DuckDB was out of memory
    forced_checkpoints: int = 0  # checkpoints the writer made after stopping queries that held them back
    segments: int = 1  # segments written (``--rotate``)


@dataclass
class Recorder:
    path: Path
    commit_interval: float = 0.2
    high_water: int = 200_000  # unwritten rows ...
    high_water_bytes: int = 64 * 1024 * 1024  # ... or unwritten payload bytes, whichever comes first
    on_failed: Callable[[str], None] | None = None
    on_checkpoint_held: Callable[[], None] | None = None  # stop the readers (called in the writer's thread)
    large_frame_bytes: int = LARGE_FRAME_BYTES  # frames this large go to Parquet parts (store.parts)
    readers_idle: Callable[[], bool] = lambda: True  # no reader's statement is running (merged parts can go)
    folder: FolderPlan | None = None  # record into a folder of segments (``record.rotation``)
    on_segment: Callable[[Path, bool], None] | None = None  # a segment is now written (True) or closed (False)
    stats: RecorderStats = field(default_factory=RecorderStats)
    error: str | None = None
    session_id: int = 0

    def __post_init__(self) -> None:
        self._pending: list[Any] = []
        self._pending_bytes = 0
        self._lock = threading.Lock()
        self._switch = threading.Lock()  # the segment being written and its connection change together
        self._oldest_pending: float | None = None
        self._wake = threading.Event()
        self._batch_ready = False
        self._busy = False  # writing full batches back to back: store large messages uncompressed
        # How long the writer took per row lately (a moving average), starting from a cautious guess: the
        # first backlog must not grow unchecked while nothing is known of the disk (100 B rows take ~5 us).
        self._row_seconds = 100e-6
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._parts: Parts | None = None
        self._next_conn_id, self._conn_step = 1, 1
        self._segments: Segments | None = None
        self.segment = self.path  # the file being written: ``path``, or the current segment of a folder
        self._session_row: list[Any] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._capacity: asyncio.Event | None = None
        self._write_hook: Callable[[], None] | None = None  # tests: make the writer fail or stall on purpose

    # --- lifecycle ---

    def start(self, *, label: str | None, listen: str, upstream: str, redacted: bool) -> int:
        """Open (or create) the file, append a new session, start the writer. Returns the session id.
        With ``folder`` set, ``path`` is a folder and the recording goes into its segments."""
        if self.folder is not None:
            try:
                self._segments = Segments(self.path, self.folder)
            except OSError as exc:
                raise RecordingError(f"cannot record into {self.path}: {exc}") from None
            self.segment = self._segments.path
            self.session_id = self._segments.session_id
            self._next_conn_id, self._conn_step = self._segments.first_conn_id, self._segments.conn_step
        self._con = con = open_for_writing(self.segment)
        if self._segments is None:
            self.session_id = con.execute("SELECT coalesce(max(session_id), 0) + 1 FROM sessions").fetchall()[0][0]
            self._next_conn_id = con.execute("SELECT coalesce(max(conn_id), 0) + 1 FROM connections").fetchall()[0][0]
        self._session_row = [self.session_id, label, now_us(), listen, upstream, __version__, redacted]
        warm_up()
        self._begin(con, self.segment)
        try:
            self._loop = asyncio.get_running_loop()
            self._capacity = asyncio.Event()
            self._capacity.set()
        except RuntimeError:
            self._loop = None
        self._thread = threading.Thread(target=self._run, name="wsproxy-recorder", daemon=True)
        self._thread.start()
        return self.session_id

    def _begin(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        """The session's row in a new file or segment (and the open connections' rows, in a segment)."""
        con.execute("INSERT INTO sessions VALUES (?, ?, make_timestamptz(?), NULL, ?, ?, ?, ?)", self._session_row)
        if self._segments is not None:
            self._segments.carry(con)
        self._parts = Parts(path, con, self.session_id)

    def snapshot_cursor(self, segment_name: str) -> duckdb.DuckDBPyConnection | None:
        """A cursor of the segment being written, if it is still ``segment_name`` (``store.snapshot``)."""
        with self._switch:
            return self._con.cursor() if self._con is not None and self.segment.name == segment_name else None

    def stop(self) -> None:
        """Write everything queued, end the session, close the file. Safe to call twice."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._thread = None
        if self._con is not None:
            if self.error is None:
                try:
                    self._con.execute("UPDATE sessions SET ended_at = make_timestamptz(?) WHERE session_id = ?",
                                      [now_us(), self.session_id])
                    if self._parts is not None:
                        self._parts.close(self._con)
                    close_checkpoint(self._con)
                except duckdb.Error as exc:
                    self.error = f"could not finish the recording {self.path}: {exc}"
            self._con.close()
            self._con = None
            if self._segments is not None:
                self._segments.finish(self.segment, self.on_segment)

    def _rotate(self) -> None:
        """Go on in the next segment; the old one is closed in a thread of its own."""
        assert self._segments is not None and self._con is not None and self._parts is not None
        old = (self._con, self._parts, self.segment)
        path = self._segments.begin_next()
        con = open_for_writing(path)
        try:
            self._begin(con, path)
        except BaseException:
            con.close()
            raise
        with self._switch:
            self.segment, self._con, self._busy = path, con, False
        self.stats.segments += 1
        announce = self.on_segment or (lambda path, live: None)
        announce(path, True)
        self._segments.close_later(*old, lambda path: announce(path, False))

    @property
    def database(self) -> duckdb.DuckDBPyConnection | None:
        """The writer's DuckDB connection (readers take a ``cursor()`` of it)."""
        return self._con

    # --- called from the relay (event loop thread) ---

    def new_conn_id(self) -> int:
        conn_id = self._next_conn_id
        self._next_conn_id += self._conn_step
        return conn_id

    def connection_opened(self, row: ConnectionOpened) -> None:
        """Queue a ``connections`` row as it is known at the handshake."""
        self._append(row)

    def connection_closed(self, conn_id: int, close_code: int | None, close_reason: str | None,
                          closed_by: str | None, error: str | None = None, closed_at_us: int | None = None) -> None:
        """Queue what is known of a connection when it ends."""
        self._append(ConnectionClosed(conn_id=conn_id, closed_at=closed_at_us or now_us(), close_code=close_code,
                                      close_reason=close_reason, closed_by=closed_by, error=error))

    def add_violation(self, row: ViolationRow) -> None:
        """Queue one ``violations`` row (core.rows.violation_row)."""
        self.stats.violations += 1
        self._append(row)

    def add_injection(self, row: InjectionRow) -> None:
        """Queue one ``injections`` row: what an --inject rule did."""
        self.stats.injections += 1
        self._append(row)

    def add_frame(self, row: FrameRow) -> None:
        """Queue one ``frame_store`` row (core.rows.frame_row)."""
        self.stats.frames_received += 1
        self._pending_bytes += row.size  # a heuristic for back pressure, reset per batch
        self._append(row)

    def _append(self, item: Any) -> None:
        # The lock makes "append to the backlog" and "take the backlog" atomic: without it an
        # append could land in a list the writer has already taken and written (a lost frame).
        with self._lock:
            if not self._pending:
                self._oldest_pending = time.monotonic()
            self._pending.append(item)
        if not self._batch_ready and (len(self._pending) >= self.high_water >> 3
                                      or self._pending_bytes >= self.high_water_bytes >> 3):
            # A full batch is waiting: write it now rather than at the next commit tick, so
            # that large messages stream through the writer instead of stopping and starting.
            self._batch_ready = True
            self._wake.set()
        # Whether the relay should wait: the high-water marks on every row (a few huge frames must not
        # overshoot the budget), the lag every 32nd row (``behind`` reads the clock: 0.3 us a frame)
        pending = len(self._pending)
        if self._capacity is not None and (pending >= self.high_water or self._pending_bytes >= self.high_water_bytes
                                           or (not pending & 31 and self.behind)):
            self._capacity.clear()

    @property
    def behind(self) -> bool:
        """The relay should wait: the backlog is past the high-water mark, its oldest row has waited
        longer than ``MAX_LAG_SECONDS``, or writing it would take longer than that at the writer's recent
        speed (without the last two a backlog of 4 KiB messages grew to 3 s of writing)."""
        pending = self._pending
        return (len(pending) >= self.high_water or self._pending_bytes >= self.high_water_bytes
                or len(pending) * self._row_seconds > MAX_LAG_SECONDS
                or (bool(pending) and time.monotonic() - (self._oldest_pending or 0.0) > MAX_LAG_SECONDS))

    @property
    def holding(self) -> bool:
        """Back pressure is on: an append found the recorder ``behind``, and the writer has not taken the
        backlog since (the pumps check this after every frame; ``behind`` is worked out once, on append)."""
        return self._capacity is not None and not self._capacity.is_set()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    @property
    def lag_seconds(self) -> float:
        """How long the oldest unwritten row has waited."""
        oldest = self._oldest_pending
        return 0.0 if oldest is None or not self._pending else time.monotonic() - oldest

    async def wait_for_capacity(self) -> None:
        """Back pressure: wait while the writer is behind."""
        if self._capacity is not None and not self._capacity.is_set():
            await self._capacity.wait()

    # --- the writer thread ---

    def _run(self) -> None:
        lower_thread_priority(WRITER_NICENESS)
        while True:
            stopping = self._stopping  # read before taking the backlog: what came before stop() is written
            if not stopping:
                self._wake.wait(self.commit_interval)
            self._wake.clear()
            if self.error is None:
                with self._lock:
                    batch, self._pending = self._pending, []
                    batch_bytes, self._pending_bytes = self._pending_bytes, 0
                    full, self._batch_ready = self._batch_ready, False
                if self._capacity is not None and not self._capacity.is_set():
                    # The backlog is empty again: the relay goes on while this batch is written
                    # (memory: at most the batch being written plus one more high-water mark).
                    self._call_in_loop(self._capacity.set)
                    # Back pressure held the relay: the writer is behind, whether or not a batch filled
                    # up (the lag bound can hold it first: then 4 KiB messages were stuck compressed, at a
                    # fifth of their speed, in one round of three)
                    full = True
                if batch:
                    lag = time.monotonic() - (self._oldest_pending or time.monotonic())
                    try:
                        self._prefer_speed(full)
                        for transaction in split_by_size(batch, batch_bytes, MAX_TRANSACTION_BYTES):
                            write_patiently(functools.partial(self._write, transaction), self._retried)
                    except Exception as exc:  # disk full, file gone, ...: fail loudly, never silently
                        self._fail(f"writing to {self.path} failed: {first_line(exc)}")
                    else:
                        self.stats.max_lag_seconds = max(self.stats.max_lag_seconds, lag)
                        self._keep_checkpointing()
                        self._tidy_parts()
            if self._segments is not None and self.error is None and not stopping and self._segments.due():
                try:
                    self._rotate()
                except Exception as exc:
                    self._fail(f"starting the next segment of {self.path} failed: {first_line(exc)}")
            if stopping and not self._pending:
                return
            if stopping and self.error is not None:
                return

    def _prefer_speed(self, busy: bool) -> None:
        # ZSTD halves how fast large messages are written, and DICT_FSST costs 150 us per 4 KiB message
        # (docs/performance.md): while full batches keep coming the recorder does without both; otherwise
        # it compresses fully (DICT_FSST makes a file of small messages 3x smaller).
        if busy != self._busy and self._con is not None:
            self._con.execute(f"SET disabled_compression_methods = '{FAST_WRITE_DISABLES}'" if busy
                              else "RESET disabled_compression_methods")
            self._busy = busy

    def _tidy_parts(self) -> None:
        """Merge small parts as they pile up; delete merged ones once no reader can be reading them."""
        parts, con = self._parts, self._con
        if parts is None or con is None:
            return
        try:
            parts.merge_small(con)
            if parts.retired and self.readers_idle():
                parts.delete_retired()
        except Exception as exc:  # a full disk: the next write would fail too; say it now, never silently
            self._fail(f"merging the Parquet parts of {self.path} failed: {first_line(exc)}")

    def _keep_checkpointing(self) -> None:
        """Checkpoint now if queries of the live recording have held DuckDB's own checkpoints back."""
        wal = self.segment.with_name(self.segment.name + ".wal")
        if not wal.exists() or wal.stat().st_size < WAL_LIMIT_BYTES:
            return
        if self.on_checkpoint_held is not None:
            self.on_checkpoint_held()
        assert self._con is not None
        for _ in range(20):  # the stopped queries end their transactions within moments
            try:
                self._con.execute("CHECKPOINT")
                self.stats.forced_checkpoints += 1
                return
            except duckdb.TransactionException:
                time.sleep(0.01)

    def _retried(self) -> None:
        self.stats.write_retries += 1

    def _write(self, batch: list[Any]) -> None:
        started = time.perf_counter()
        if self._write_hook is not None:  # a slow or failing disk, in tests: its time counts as writing
            self._write_hook()
        con = self._con
        assert con is not None
        rows = write_batch(con, batch, self._parts, self.large_frame_bytes)
        if self._segments is not None:
            self._segments.written(batch)
        stats = self.stats
        elapsed = time.perf_counter() - started
        if batch:
            self._row_seconds = 0.5 * self._row_seconds + 0.5 * elapsed / len(batch)
        stats.rows_written += rows
        stats.batches += 1
        stats.last_batch_rows = rows
        stats.write_seconds += elapsed

    def _fail(self, message: str) -> None:
        self.error = message
        if self._capacity is not None:
            self._call_in_loop(self._capacity.set)  # release waiting pumps: they see the error
        if self.on_failed is not None:
            self._call_in_loop(self.on_failed, message)

    def _call_in_loop(self, callback: Callable[..., None], *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(callback, *args)
            except RuntimeError:  # the loop closed meanwhile: nobody is waiting any more
                pass
