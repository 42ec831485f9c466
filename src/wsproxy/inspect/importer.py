"""``wsproxy import``: JSONL exports and HAR captures into a recording, parsed like recorded
traffic, so that check, replay, query, show and diagram work on them the same way.

Both readers check every record at the door (``inspect.jsonl.read_jsonl``, ``inspect.har.from_har``):
what does not fit is skipped and counted by reason, so nothing imported can break a reader later. The
rows go in as Arrow batches, in one transaction, with progress told as they go."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from wsproxy import __version__
from wsproxy.core.protocol import decode
from wsproxy.core.recorded import RecordedConnection, iso_to_us
from wsproxy.core.rows import ConnectionClosed, ConnectionOpened, FrameRow, frame_row
from wsproxy.inspect.har import from_har
from wsproxy.inspect.jsonl import read_jsonl
from wsproxy.store.batches import insert_frames, insert_rows, update_closed
from wsproxy.store.files import RecordingError, StoreError, close_checkpoint, open_for_writing

BATCH_ROWS = 20_000  # frames per Arrow batch (memory: one batch at a time, not the whole capture)
Progress = Callable[[int, int], None]  # (frames written so far, frames in all)


@dataclass
class Imported:
    session_id: int
    connections: int
    frames: int
    skipped: dict[str, int]


@dataclass
class Capture:
    """A session ready to write: its fields, its connections (with what else the file knew of each)."""
    label: str | None
    started_us: int | None
    ended_us: int | None
    listen: str | None
    upstream: str | None
    wsproxy_version: str | None
    redacted: bool | None
    connections: list[tuple[RecordedConnection, str | None, str | None]]  # (conn, client_addr, error)
    skipped: dict[str, int]


def import_file(source: Path, db: Path, label: str | None = None, progress: Progress | None = None) -> Imported:
    """Import a JSONL export or a HAR file (by content) as a new session of ``db``."""
    try:
        with source.open("rb") as handle:
            head = handle.read(4096).lstrip()
    except OSError as exc:
        raise StoreError(f"cannot read {source}: {exc.strerror}") from None
    capture = _from_jsonl(source) if head.startswith(b'{"record"') else _from_har(source)
    if label:
        capture.label = label
    return _write(db, capture, progress)


def _from_har(source: Path) -> Capture:
    try:
        document = msgspec.json.decode(source.read_bytes())
    except msgspec.DecodeError as exc:
        raise StoreError(f"{source} is neither a wsproxy JSONL export nor a HAR file (not JSON: {exc})") from None
    except OSError as exc:
        raise StoreError(f"cannot read {source}: {exc.strerror}") from None
    try:
        har = from_har(document, source.stem)
    except ValueError as exc:
        raise StoreError(f"{source}: {exc}") from None
    conns = har.session.connections
    for conn in conns:
        conn.response_headers = har.response_headers.get(conn.conn_id) or {}
    return Capture(source.stem, min((c.opened_us for c in conns), default=None),
                   max((c.closed_us or c.opened_us for c in conns), default=None), f"import:{source.name}",
                   har.upstream, __version__, False, [(c, None, None) for c in conns], har.skipped)


def _from_jsonl(source: Path) -> Capture:
    found = read_jsonl(source)
    session = found.session
    return Capture(session.label, iso_to_us(session.started_at), iso_to_us(session.ended_at), session.listen,
                   session.upstream, session.wsproxy_version, session.redacted,
                   [(conn, record.client_addr, record.error) for record, conn in found.connections], found.skipped)


def _write(db: Path, capture: Capture, progress: Progress | None) -> Imported:
    try:
        con = open_for_writing(db)
    except RecordingError as exc:
        raise StoreError(str(exc)) from None
    total = sum(len(conn.frames) for conn, _, _ in capture.connections)
    written = 0
    try:
        session_id = con.execute("SELECT coalesce(max(session_id), 0) + 1 FROM sessions").fetchall()[0][0]
        first_free = con.execute("SELECT coalesce(max(conn_id), 0) + 1 FROM connections").fetchall()[0][0]
        # keep the recorded connection ids when they are free (an exact restore), else shift them all
        lowest = min((conn.conn_id for conn, _, _ in capture.connections), default=first_free)
        shift = 0 if lowest >= first_free else first_free - lowest
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO sessions VALUES (?, ?, make_timestamptz(?), make_timestamptz(?), ?, ?, ?, ?)",
                    [session_id, capture.label, capture.started_us, capture.ended_us, capture.listen,
                     capture.upstream, capture.wsproxy_version, capture.redacted])
        opened = [_opened(conn, shift, session_id, client_addr, error) for conn, client_addr, error in capture.connections]
        if opened:
            insert_rows(con, "connections", opened, ConnectionOpened)
            closed = [ConnectionClosed(conn_id=conn.conn_id + shift, closed_at=conn.closed_us, close_code=conn.close_code,
                                       close_reason=conn.close_reason, closed_by=conn.closed_by, error=error)
                      for conn, _, error in capture.connections if conn.closed_us is not None]
            if closed:
                update_closed(con, closed)
        for batch in _batches(capture.connections, shift):
            insert_frames(con, batch)
            written += len(batch)
            if progress is not None:
                progress(written, total)
        con.execute("COMMIT")
        close_checkpoint(con)
    finally:
        con.close()
    return Imported(session_id, len(capture.connections), written, capture.skipped)


def _opened(conn: RecordedConnection, shift: int, session_id: int, client_addr: str | None,
            error: str | None) -> ConnectionOpened:
    return ConnectionOpened(conn_id=conn.conn_id + shift, session_id=session_id, opened_at=conn.opened_us,
                            path=conn.path, query=conn.query, client_addr=client_addr, subprotocol=conn.subprotocol,
                            request_headers=_json(conn.request_headers),
                            response_headers=_json(conn.response_headers or None), status=conn.status, error=error)


def _batches(connections: list[tuple[RecordedConnection, Any, Any]], shift: int) -> Iterator[list[FrameRow]]:
    """Every frame as a ``frame_store`` row, parsed like recorded traffic, ``BATCH_ROWS`` at a time."""
    rows: list[FrameRow] = []
    for conn, _, _ in connections:
        for f in conn.frames:
            data = f.text if f.kind in ("text", "close") else f.data
            if data is None:
                data = "" if f.kind in ("text", "close") else b""
            parsed = decode(f.kind, data, f.sender) if f.kind in ("text", "binary") else None
            rows.append(frame_row(f.conn_id + shift, f.seq, f.ts_us, f.sender, f.kind, data, parsed, f.close_code))
            if len(rows) >= BATCH_ROWS:
                yield rows
                rows = []
    if rows:
        yield rows


def _json(value: Any) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()
