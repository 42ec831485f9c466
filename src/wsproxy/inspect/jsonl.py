"""The JSONL recording format: one JSON object per line, the fixtures format.

Human-diffable and lossless: a header line, the session, its connections, then every frame of
each connection in order (text as text, binary/ping/pong bytes as base64, close code and reason).
Parsed columns are not stored: they are derived again from the text on import. docs/formats.md
describes every field.

    {"record": "wsproxy-jsonl", "version": 1, "wsproxy_version": "0.1.0"}
    {"record": "session", "session_id": 1, "label": "demo", "started_at": "...", ...}
    {"record": "connection", "conn_id": 1, "path": "/chat", "query": "user=User1", ...}
    {"record": "frame", "conn_id": 1, "seq": 1, "ts": "2026-11-25T19:52:08.123456+00:00", "sender": "client", "kind": "text", "text": "..."}
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import duckdb
import msgspec

from wsproxy import __version__
from wsproxy.core.recorded import RecordedConnection, RecordedFrame, RecordedSession, iso_to_us
from wsproxy.store.files import StoreError
from wsproxy.store.read import session_info

FORMAT = "wsproxy-jsonl"
VERSION = 1
_encode = msgspec.json.encode

SESSION_FIELDS = ("session_id", "label", "started_at", "ended_at", "listen", "upstream", "wsproxy_version",
                  "redacted")
CONNECTION_FIELDS = ("conn_id", "opened_at", "closed_at", "path", "query", "client_addr", "subprotocol",
                     "request_headers", "response_headers", "status", "close_code", "close_reason", "closed_by",
                     "error")


def write_jsonl(con: duckdb.DuckDBPyConnection, session_id: int | None, out: IO[str]) -> int:
    """Write one session as JSONL; returns the number of frames written."""
    info = session_info(con, session_id)
    out.write(_line({"record": FORMAT, "version": VERSION, "wsproxy_version": __version__}))
    row = con.execute(f"SELECT {', '.join(SESSION_FIELDS)} FROM sessions WHERE session_id = ?",
                      [info.session_id]).fetchone()
    out.write(_line({"record": "session", **{k: _plain(v) for k, v in zip(SESSION_FIELDS, row)}}))
    for row in con.execute(f"SELECT {', '.join(CONNECTION_FIELDS)} FROM connections WHERE session_id = ? "
                           f"ORDER BY conn_id", [info.session_id]).fetchall():
        values = {k: _plain(v) for k, v in zip(CONNECTION_FIELDS, row)}
        for key in ("request_headers", "response_headers"):
            values[key] = msgspec.json.decode(values[key]) if values[key] else None
        out.write(_line({"record": "connection", **values}))
    frames = 0
    result = con.execute(
        "SELECT f.conn_id, f.seq, f.ts, f.sender, f.kind, f.text, f.data, f.close_code FROM frames f "
        "JOIN connections c USING (conn_id) WHERE c.session_id = ? ORDER BY f.conn_id, f.seq", [info.session_id])
    while rows := result.fetchmany(10_000):
        for conn_id, seq, ts, sender, kind, text, data, close_code in rows:
            record: dict[str, Any] = {"record": "frame", "conn_id": conn_id, "seq": seq, "ts": _plain(ts),
                                      "sender": sender, "kind": kind}
            if text is not None:
                record["text"] = text
            if data is not None:
                record["data_b64"] = base64.b64encode(data).decode("ascii")
            if close_code is not None:
                record["close_code"] = close_code
            out.write(_line(record))
            frames += 1
    # what --inject did, after the frames it did it to (readers that do not know the record skip it)
    for conn_id, seq, ts, sender, action, rule, detail in con.execute(
            "SELECT conn_id, seq, ts, sender, action, rule, detail FROM injections WHERE session_id = ? "
            "ORDER BY ts, conn_id, seq", [info.session_id]).fetchall():
        out.write(_line({"record": "injection", "conn_id": conn_id, "seq": seq, "ts": _plain(ts), "sender": sender,
                         "action": action, "rule": rule, "detail": detail}))
    return frames


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSONL recording, checked line by line; errors name the line."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = msgspec.json.decode(line)
            except msgspec.DecodeError as exc:
                raise StoreError(f"{path} line {number} is not JSON ({exc}): is this a wsproxy JSONL export?") from None
            if not isinstance(record, dict) or "record" not in record:
                raise StoreError(f"{path} line {number} has no \"record\" field: not a wsproxy JSONL export")
            if number == 1 and record.get("record") != FORMAT:
                raise StoreError(f"{path} does not start with a {FORMAT} header: not a wsproxy JSONL export")
            if number == 1 and int(record.get("version", 0)) > VERSION:
                raise StoreError(f"{path} is JSONL version {record.get('version')}; this wsproxy reads up to "
                                 f"{VERSION}: upgrade wsproxy")
            yield record


def session_from_jsonl(path: Path, session_id: int | None = None) -> RecordedSession:
    """The session in a JSONL recording, as plain values for replay."""
    session: dict[str, Any] | None = None
    connections: dict[int, RecordedConnection] = {}
    for record in read_records(path):
        kind = record["record"]
        try:
            if kind == "session":
                session = record
            elif kind == "connection":
                connections[record["conn_id"]] = RecordedConnection(
                    record["conn_id"], record.get("path") or "/", record.get("query") or "",
                    iso_to_us(record["opened_at"]), record.get("request_headers") or {}, record.get("subprotocol"),
                    record.get("status"), iso_to_us(record.get("closed_at")), record.get("close_code"),
                    record.get("close_reason"), record.get("closed_by"),
                    response_headers=record.get("response_headers") or {})
            elif kind == "frame":
                connections[record["conn_id"]].frames.append(frame_from_record(record))
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{path}: a {kind} record is incomplete or malformed ({exc!r})") from None
    if session is None:
        raise StoreError(f"{path} holds no session record")
    if session_id is not None and session_id != session.get("session_id"):
        raise StoreError(f"{path} holds session {session.get('session_id')}, not {session_id}")
    for conn in connections.values():
        conn.frames.sort(key=lambda f: f.seq)
    return RecordedSession(session.get("session_id", 1), session.get("label"), list(connections.values()))


def is_jsonl(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(64).lstrip().startswith(b'{"record"')
    except OSError:
        return False


def _line(record: dict[str, Any]) -> str:
    return _encode(record).decode() + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds")
    return value


def frame_from_record(record: dict[str, Any]) -> RecordedFrame:
    """A ``frame`` record as a RecordedFrame (KeyError, TypeError or ValueError when malformed)."""
    data = record.get("data_b64")
    return RecordedFrame(record["conn_id"], record["seq"], iso_to_us(record["ts"]), record["sender"], record["kind"],
                         record.get("text"), base64.b64decode(data) if data is not None else None,
                         record.get("close_code"))
