"""The writer's side of a recording folder (``--workers``, ``--rotate``, ``--keep``): which segment it
writes, when the next begins, which connections the next must know, and closing and deleting old
segments in a thread of their own, so that no frame waits for a rotation.

A segment is an ordinary recording file: it has the session's row, and the ``connections`` row of
every connection it has frames of (one still open at a rotation is carried into the next segment,
where its close is filled in; ``store.folder`` keeps the newest row of each connection).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from wsproxy.core.errors import first_line
from wsproxy.core.rows import ConnectionClosed, ConnectionOpened, FrameRow
from wsproxy.core.segments import Retention, Rotation, SegmentName, conn_ids, parse_segment_name
from wsproxy.store.batches import insert_rows
from wsproxy.store.files import close_checkpoint, sidecar_path
from wsproxy.store.folder import folder_stats
from wsproxy.store.parts import Parts, parts_dir


@dataclass(frozen=True, kw_only=True)
class FolderPlan:
    """How one process writes its share of a recording folder."""
    worker: int = 0  # 0-based
    workers: int = 1
    session_id: int = 0  # 0: the one after the folder's newest (a single process decides alone)
    conn_base: int = -1  # connection ids start above this; -1: above the folder's highest
    rotation: Rotation | None = None
    retention: Retention | None = None


class Segments:
    """The segment being written and the ones being closed (writer thread, except ``join``)."""

    def __init__(self, folder: Path, plan: FolderPlan) -> None:
        self.folder = folder
        self.plan = plan
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"{folder} is a file: --workers and --rotate record into a folder; give a "
                                     f"new --db path")
        folder.mkdir(parents=True, exist_ok=True)
        session_id, conn_base = plan.session_id, plan.conn_base
        if not session_id or conn_base < 0:
            last_session, last_conn = folder_stats(folder)
            session_id = session_id or last_session + 1
            conn_base = last_conn if conn_base < 0 else conn_base
        self.session_id = session_id
        self.first_conn_id, self.conn_step = conn_ids(conn_base, plan.worker, plan.workers)
        self.name = SegmentName(session_id, plan.worker, 1)
        self._open: dict[int, ConnectionOpened] = {}  # connections with no close yet, as opened
        self._bytes = 0
        self._started = time.monotonic()
        self._closers: list[threading.Thread] = []
        self.errors: list[str] = []  # closing or deleting an old segment failed (said, not fatal)

    @property
    def path(self) -> Path:
        return self.folder / self.name.file_name

    def written(self, batch: list[Any]) -> None:
        """A batch was committed to the current segment."""
        for item in batch:
            kind = type(item)
            if kind is FrameRow:
                self._bytes += item.size
            elif kind is ConnectionOpened:
                self._open[item.conn_id] = item
            elif kind is ConnectionClosed:
                self._open.pop(item.conn_id, None)

    def due(self) -> bool:
        rotation = self.plan.rotation
        return rotation is not None and rotation.due(self._bytes, time.monotonic() - self._started)

    def begin_next(self) -> Path:
        """The next segment's path; counters start over."""
        self.name = self.name.next()
        self._bytes, self._started = 0, time.monotonic()
        return self.path

    def carry(self, con: duckdb.DuckDBPyConnection) -> None:
        """The rows of connections still open, into a new segment (their frames go on in it)."""
        if self._open:
            insert_rows(con, "connections", list(self._open.values()), ConnectionOpened)

    def close_later(self, con: duckdb.DuckDBPyConnection, parts: Parts, path: Path,
                    closed: Callable[[Path], None]) -> None:
        """Finish an old segment in a thread of its own (folding its parts and the last checkpoint take
        time the relay must not wait for), then apply ``--keep``."""
        thread = threading.Thread(target=self._close, args=(con, parts, path, closed),
                                  name=f"wsproxy-close-{path.name}", daemon=True)
        self._closers.append(thread)
        thread.start()

    def _close(self, con: duckdb.DuckDBPyConnection, parts: Parts, path: Path,
               closed: Callable[[Path], None]) -> None:
        try:
            parts.close(con)
            close_checkpoint(con)
        except duckdb.Error as exc:  # the file keeps what was committed; say so, record on in the next
            self.errors.append(f"closing segment {path.name} failed: {first_line(exc)}")
        finally:
            con.close()
            closed(path)
        self.keep()

    def keep(self, finished: bool = False) -> None:
        """Delete this worker's oldest closed segments beyond ``--keep`` (``finished``: the last one too
        is closed now)."""
        retention = self.plan.retention
        if retention is None:
            return
        current = None if finished else self.path
        mine = []
        for segment in sorted(self.folder.glob("*.duckdb")):
            parsed = parse_segment_name(segment.name)
            if parsed is None or parsed.worker != self.plan.worker or segment == current:
                continue
            if any(thread.name == f"wsproxy-close-{segment.name}" and thread.is_alive() for thread in self._closers):
                continue
            try:
                mine.append((segment.name, segment.stat().st_mtime))
            except OSError:
                continue
        for name in retention.to_delete(sorted(mine, key=lambda item: item[1]), time.time()):
            delete_segment(self.folder / name)

    def finish(self, last: Path, announce: Callable[[Path, bool], None] | None) -> None:
        """The last segment is closed: wait for the old ones, apply ``--keep``, say so."""
        for thread in self._closers:
            thread.join()
        self._closers = []
        self.keep(finished=True)
        if announce is not None:
            announce(last, False)


def delete_segment(segment: Path) -> None:
    """A segment and everything beside it: its log, its Parquet parts, a stale sidecar."""
    for path in (segment, segment.with_name(segment.name + ".wal"), sidecar_path(segment)):
        path.unlink(missing_ok=True)
    shutil.rmtree(parts_dir(segment), ignore_errors=True)
