"""``wsproxy import``: JSONL exports and HAR captures into a recording, parsed like recorded
traffic, so that check, replay, query, show and diagram work on them the same way."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from wsproxy import __version__
from wsproxy.inspect.har import from_har
from wsproxy.inspect.jsonl import frame_from_record, read_records
from wsproxy.core.protocol import decode
from wsproxy.store.files import close_checkpoint, open_for_writing
from wsproxy.store.batches import insert_frames
from wsproxy.core.recorded import RecordedFrame, iso_to_us
from wsproxy.core.rows import frame_row
from wsproxy.store.files import StoreError


@dataclass
class Imported:
    session_id: int
    connections: int
    frames: int
    skipped: dict[str, int]


def import_file(source: Path, db: Path, label: str | None = None) -> Imported:
    """Import a JSONL export or a HAR file (by content) as a new session of ``db``."""
    try:
        head = source.read_bytes()[:4096].lstrip()
    except OSError as exc:
        raise StoreError(f"cannot read {source}: {exc.strerror}") from None
    if head.startswith(b'{"record"'):
        return _import_jsonl(source, db, label)
    try:
        document = msgspec.json.decode(source.read_bytes())
    except msgspec.DecodeError as exc:
        raise StoreError(f"{source} is neither a wsproxy JSONL export nor a HAR file (not JSON: {exc})") from None
    try:
        har = from_har(document, label or source.stem)
    except ValueError as exc:
        raise StoreError(f"{source}: {exc}") from None
    session = {"label": label or source.stem, "started_at": min((c.opened_us for c in har.session.connections),
                                                                default=None),
               "ended_at": max((c.closed_us or c.opened_us for c in har.session.connections), default=None),
               "listen": f"import:{source.name}", "upstream": har.upstream, "wsproxy_version": __version__,
               "redacted": False}
    connections = [{"conn_id": c.conn_id, "opened_at": c.opened_us, "closed_at": c.closed_us, "path": c.path,
                    "query": c.query, "client_addr": None, "subprotocol": c.subprotocol,
                    "request_headers": c.request_headers, "response_headers": har.response_headers.get(c.conn_id),
                    "status": c.status, "close_code": None, "close_reason": None, "closed_by": None,
                    "error": None} for c in har.session.connections]
    frames = [f for c in har.session.connections for f in c.frames]
    return _write(db, session, connections, frames, har.skipped)


def _import_jsonl(source: Path, db: Path, label: str | None) -> Imported:
    session: dict[str, Any] | None = None
    connections: list[dict[str, Any]] = []
    frames: list[RecordedFrame] = []
    for record in read_records(source):
        kind = record["record"]
        try:
            if kind == "session":
                session = dict(record)
                for key in ("started_at", "ended_at"):
                    session[key] = iso_to_us(session.get(key))
            elif kind == "connection":
                connection = dict(record)
                for key in ("opened_at", "closed_at"):
                    connection[key] = iso_to_us(connection.get(key))
                connections.append(connection)
            elif kind == "frame":
                frames.append(frame_from_record(record))
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{source}: a {kind} record is incomplete or malformed ({exc!r})") from None
    if session is None:
        raise StoreError(f"{source} holds no session record")
    if label:
        session["label"] = label
    return _write(db, session, connections, frames, {})


def _write(db: Path, session: dict[str, Any], connections: list[dict[str, Any]], frames: Iterable[RecordedFrame],
           skipped: dict[str, int]) -> Imported:
    from wsproxy.store.files import RecordingError
    try:
        con = open_for_writing(db)
    except RecordingError as exc:
        raise StoreError(str(exc)) from None
    try:
        session_id = con.execute("SELECT coalesce(max(session_id), 0) + 1 FROM sessions").fetchone()[0]
        first_free = con.execute("SELECT coalesce(max(conn_id), 0) + 1 FROM connections").fetchone()[0]
        # keep the recorded connection ids when they are free (an exact restore), else shift them all
        lowest = min((c["conn_id"] for c in connections), default=first_free)
        shift = 0 if lowest >= first_free else first_free - lowest
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO sessions VALUES (?, ?, make_timestamptz(?), make_timestamptz(?), ?, ?, ?, ?)",
                    [session_id, session.get("label"), session.get("started_at"), session.get("ended_at"),
                     session.get("listen"), session.get("upstream"), session.get("wsproxy_version"),
                     session.get("redacted")])
        for c in connections:
            con.execute("INSERT INTO connections VALUES (?, ?, make_timestamptz(?), make_timestamptz(?), ?, ?, ?, ?, "
                        "?, ?, ?, ?, ?, ?, ?)",
                        [c["conn_id"] + shift, session_id, c.get("opened_at"), c.get("closed_at"), c.get("path"),
                         c.get("query"), c.get("client_addr"), c.get("subprotocol"), _json(c.get("request_headers")),
                         _json(c.get("response_headers")), c.get("status"), c.get("close_code"),
                         c.get("close_reason"), c.get("closed_by"), c.get("error")])
        rows = []
        for f in frames:
            data = f.text if f.kind in ("text", "close") else f.data
            parsed = decode(f.kind, data, f.sender) if f.kind in ("text", "binary") else None
            rows.append(frame_row(f.conn_id + shift, f.seq, f.ts_us, f.sender, f.kind,
                                  data if data is not None else ("" if f.kind in ("text", "close") else b""),
                                  parsed, f.close_code))
        if rows:
            insert_frames(con, rows)
        con.execute("COMMIT")
        close_checkpoint(con)
    finally:
        con.close()
    return Imported(session_id, len(connections), len(rows), skipped)


def _json(value: Any) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()
