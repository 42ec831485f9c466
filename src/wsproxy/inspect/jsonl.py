"""The JSONL recording format: one JSON object per line, the fixtures format.

Human-diffable and lossless: a header line, the session, its connections, then every frame of
each connection in order (text as text, binary/ping/pong bytes as base64, close code and reason).
Parsed columns are not stored: they are derived again from the text on import. docs/formats.md
describes every field.

    {"record": "wsproxy-jsonl", "version": 1, "wsproxy_version": "0.1.0"}
    {"record": "session", "session_id": 1, "label": "demo", "started_at": "...", ...}
    {"record": "connection", "conn_id": 1, "path": "/chat", "query": "user=User1", ...}
    {"record": "frame", "conn_id": 1, "seq": 1, "ts": "2026-11-25T19:52:08.123456+00:00", "sender": "client",
     "kind": "text", "text": "..."}
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any

import duckdb
import msgspec

from wsproxy import __version__
from wsproxy.core.recorded import RecordedConnection, RecordedFrame, RecordedSession, iso_to_us
from wsproxy.core.vocab import ClosedBy, FrameKind, Sender
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
                      [info.session_id]).fetchall()[0]
    out.write(_line({"record": "session", **{k: _plain(v) for k, v in zip(SESSION_FIELDS, row, strict=True)}}))
    for row in con.execute(f"SELECT {', '.join(CONNECTION_FIELDS)} FROM connections WHERE session_id = ? "
                           f"ORDER BY conn_id", [info.session_id]).fetchall():
        values = {k: _plain(v) for k, v in zip(CONNECTION_FIELDS, row, strict=True)}
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


Int32 = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]  # DuckDB's INTEGER columns hold these
Count = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]


class Header(msgspec.Struct):
    version: Count = 1


class SessionRecord(msgspec.Struct, kw_only=True):
    session_id: Count = 1
    label: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    listen: str | None = None
    upstream: str | None = None
    wsproxy_version: str | None = None
    redacted: bool | None = None


class ConnectionRecord(msgspec.Struct, kw_only=True):
    conn_id: Count
    opened_at: str
    closed_at: str | None = None
    path: str | None = None
    query: str | None = None
    client_addr: str | None = None
    subprotocol: str | None = None
    request_headers: dict[str, Any] | None = None
    response_headers: dict[str, Any] | None = None
    status: Annotated[int, msgspec.Meta(ge=100, le=599)] | None = None
    close_code: Annotated[int, msgspec.Meta(ge=0, le=65535)] | None = None
    close_reason: str | None = None
    closed_by: ClosedBy | None = None
    error: str | None = None


class FrameRecord(msgspec.Struct, kw_only=True):
    conn_id: Count
    seq: Count
    ts: str
    sender: Sender
    kind: FrameKind
    text: str | None = None
    data_b64: str | None = None
    close_code: Annotated[int, msgspec.Meta(ge=0, le=65535)] | None = None


@dataclass
class JsonlFile:
    """What a JSONL file holds that wsproxy can use; ``skipped`` counts the rest by reason."""
    session: SessionRecord
    connections: list[tuple[ConnectionRecord, RecordedConnection]]
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return sum(len(conn.frames) for _, conn in self.connections)


def read_jsonl(path: Path) -> JsonlFile:
    """A JSONL recording, checked record by record at the door: a record of the wrong shape or type, a
    frame of a connection the file does not hold, or a repeated id is skipped and counted, never fatal;
    a file that is not a wsproxy JSONL export is a ``StoreError``."""
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    session: SessionRecord | None = None
    connections: dict[int, tuple[ConnectionRecord, RecordedConnection]] = {}
    seqs: set[tuple[int, int]] = set()
    frames: list[FrameRecord] = []
    for _number, record in _records(path):
        kind = record["record"]
        try:
            if kind == "session":
                if session is not None:
                    skip("a second session record (a file holds one session)")
                    continue
                candidate = msgspec.convert(record, SessionRecord)
                iso_to_us(candidate.started_at), iso_to_us(candidate.ended_at)  # refused before it is kept
                session = candidate
            elif kind == "connection":
                conn = msgspec.convert(record, ConnectionRecord)
                if conn.conn_id in connections:
                    skip("a connection whose conn_id repeats an earlier one")
                    continue
                connections[conn.conn_id] = (conn, RecordedConnection(
                    conn.conn_id, conn.path or "/", conn.query or "", _us(conn.opened_at), conn.request_headers or {},
                    conn.subprotocol, conn.status, iso_to_us(conn.closed_at), conn.close_code, conn.close_reason,
                    conn.closed_by, response_headers=conn.response_headers or {}))
            elif kind == "frame":
                frame = msgspec.convert(record, FrameRecord)
                if (frame.conn_id, frame.seq) in seqs:
                    skip("a frame whose seq repeats an earlier one of its connection")
                    continue
                seqs.add((frame.conn_id, frame.seq))
                frames.append(frame)
        except msgspec.ValidationError as exc:
            skip(f"a {kind} record with a missing or wrong field ({_field_of(exc)})")
        except (ValueError, OverflowError):
            skip(f"a {kind} record whose time is not an ISO 8601 time")
    if session is None:
        why = [reason for reason in skipped if reason.startswith("a session record")]
        raise StoreError(f"{path}: its session record is unusable ({why[0]})" if why
                         else f"{path} holds no session record")
    for frame in frames:
        found = connections.get(frame.conn_id)
        if found is None:
            skip("a frame of a connection the file does not hold")
            continue
        try:
            found[1].frames.append(_frame(frame))
        except (ValueError, OverflowError):
            skip("a frame whose time is not an ISO 8601 time, or whose data is not base64")
    for _, recorded in connections.values():
        recorded.frames.sort(key=lambda f: f.seq)
    return JsonlFile(session, list(connections.values()), skipped)


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The JSON objects of a JSONL file with their line numbers; the header checked."""
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
            if not isinstance(record, dict) or not isinstance(record.get("record"), str):
                raise StoreError(f"{path} line {number} has no \"record\" field: not a wsproxy JSONL export")
            if number == 1:
                if record["record"] != FORMAT:
                    raise StoreError(f"{path} does not start with a {FORMAT} header: not a wsproxy JSONL export")
                try:
                    version = msgspec.convert(record, Header).version
                except msgspec.ValidationError:
                    raise StoreError(f"{path}: its header's version is not a whole number above 0") from None
                if version > VERSION:
                    raise StoreError(f"{path} is JSONL version {version}; this wsproxy reads up to {VERSION}: "
                                     f"upgrade wsproxy")
                continue
            yield number, record


def session_from_jsonl(path: Path, session_id: int | None = None) -> RecordedSession:
    """The session in a JSONL recording, as plain values for replay."""
    found = read_jsonl(path)
    if session_id is not None and session_id != found.session.session_id:
        raise StoreError(f"{path} holds session {found.session.session_id}, not {session_id}")
    return RecordedSession(found.session.session_id, found.session.label, [conn for _, conn in found.connections])


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
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def _frame(record: FrameRecord) -> RecordedFrame:
    data = base64.b64decode(record.data_b64, validate=True) if record.data_b64 is not None else None
    return RecordedFrame(record.conn_id, record.seq, _us(record.ts), record.sender, record.kind, record.text, data,
                         record.close_code)


def _us(text: str) -> int:
    us = iso_to_us(text)
    assert us is not None
    return us


def _field_of(exc: msgspec.ValidationError) -> str:
    """Which field a validation error is about (msgspec names it as ``at `$.field```)."""
    text = str(exc)
    if "`$." in text:  # "Expected `int`, got `str` - at `$.seq`"
        return text.rsplit("`$.", 1)[-1].split("`")[0].split("[")[0]
    if "missing required field `" in text:  # "Object missing required field `conn_id`"
        return text.rsplit("field `", 1)[-1].rstrip("`")
    return text
