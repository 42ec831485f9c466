"""HAR 1.2 with Chrome's WebSocket dialect (``_webSocketMessages``): the exchange format of Chrome
DevTools, mitmproxy, HTTP Toolkit, Proxyman and Playwright (../shared/spec/har-websocket.md).
Writers differ in the unit of a message's time (seconds or milliseconds): both are read.

HAR carries only data messages: no close codes, pings or pongs. So it is for exchanging captures,
never wsproxy's archive (that is JSONL). Pure: dictionaries in and out.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard
from urllib.parse import parse_qsl, urlsplit

from wsproxy import __version__
from wsproxy.core.recorded import RecordedConnection, RecordedFrame, RecordedSession, iso_to_us
from wsproxy.core.vocab import Sender


def to_har(session: RecordedSession, upstream: str | None) -> dict[str, Any]:
    """One HAR entry per connection, on its upgrade request, with its data messages."""
    base = urlsplit(upstream or "ws://localhost")
    entries = []
    for conn in session.connections:
        url = f"{base.scheme or 'ws'}://{base.netloc or 'localhost'}{base.path.rstrip('/')}{conn.path}" + \
              (f"?{conn.query}" if conn.query else "")
        messages = []
        for frame in conn.frames:
            if frame.kind == "text":
                messages.append({"type": _direction(frame), "time": frame.ts_us / 1_000_000, "opcode": 1,
                                 "data": frame.text or ""})
            elif frame.kind == "binary":
                messages.append({"type": _direction(frame), "time": frame.ts_us / 1_000_000, "opcode": 2,
                                 "data": base64.b64encode(frame.data or b"").decode("ascii")})
        duration = ((conn.closed_us or conn.opened_us) - conn.opened_us) / 1000
        entries.append({
            "startedDateTime": _iso(conn.opened_us), "time": duration, "_resourceType": "websocket",
            "request": {"method": "GET", "url": url, "httpVersion": "HTTP/1.1",
                        "headers": _header_list(conn.request_headers),
                        "queryString": [{"name": k, "value": v} for k, v in parse_qsl(conn.query, keep_blank_values=True)],
                        "cookies": [], "headersSize": -1, "bodySize": 0},
            "response": {"status": conn.status or 0,
                         "statusText": "Switching Protocols" if conn.status == 101 else "",
                         "httpVersion": "HTTP/1.1", "headers": _header_list(conn.response_headers), "cookies": [],
                         "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "", "headersSize": -1,
                         "bodySize": 0},
            "cache": {}, "timings": {"send": 0, "wait": duration, "receive": 0},
            "_webSocketMessages": messages,
        })
    return {"log": {"version": "1.2", "creator": {"name": "wsproxy", "version": __version__}, "pages": [],
                    "entries": entries}}


@dataclass
class HarImport:
    session: RecordedSession
    upstream: str | None
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> how many messages or entries
    response_headers: dict[int, dict[str, Any]] = field(default_factory=dict)


def from_har(document: Any, label: str) -> HarImport:
    """The WebSocket connections of a HAR file. Malformed entries and messages are skipped and
    counted by reason, never fatal."""
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    entries = document.get("log", {}).get("entries") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a HAR file: no log.entries list")
    connections: list[RecordedConnection] = []
    response_headers: dict[int, dict[str, Any]] = {}
    upstream = None
    for entry in entries:
        if not isinstance(entry, dict):
            skip("an entry that is not an object")
            continue
        messages = entry.get("_webSocketMessages")
        if entry.get("_resourceType") != "websocket" and messages is None:
            continue  # ordinary HTTP: not WebSocket traffic
        request = _object(entry.get("request"))
        url = request.get("url")
        if not isinstance(url, str) or not url:
            skip("a WebSocket entry without a request URL")
            continue
        parts = urlsplit(url)
        upstream = upstream or f"{parts.scheme}://{parts.netloc}"
        conn_id = len(connections) + 1
        try:
            opened = iso_to_us(entry["startedDateTime"])
        except (KeyError, TypeError, ValueError, OverflowError):
            opened = None
        if opened is None:
            skip("a WebSocket entry without a valid startedDateTime")
            continue
        response = _object(entry.get("response"))
        status = response.get("status", 101)
        if not _whole(status) or not 100 <= status <= 599:
            skip("a WebSocket entry whose response status is not an HTTP status (100-599)")
            continue
        conn = RecordedConnection(conn_id, parts.path or "/", parts.query, opened,
                                  _header_object(request.get("headers")), None, status)
        response_headers[conn_id] = _header_object(response.get("headers"))
        protocol = response_headers[conn_id].get("Sec-WebSocket-Protocol") or \
            response_headers[conn_id].get("sec-websocket-protocol")
        conn.subprotocol = protocol if isinstance(protocol, str) else None
        frames = []
        for message in messages if isinstance(messages, list) else []:
            frame = _frame(conn_id, opened, message, skip)
            if frame is not None:
                frames.append(frame)
        frames.sort(key=lambda f: f.ts_us)  # stable: equal times keep the file's order
        conn.frames = [RecordedFrame(f.conn_id, seq, f.ts_us, f.sender, f.kind, f.text, f.data)
                       for seq, f in enumerate(frames, 1)]
        duration = entry.get("time")  # milliseconds; a value past LONGEST_CONNECTION_US is no duration
        end = frames[-1].ts_us if frames else opened
        if _number(duration) and 0 < duration * 1000 <= LONGEST_CONNECTION_US:
            end = max(end, opened + int(duration * 1000))
        conn.closed_us = end
        connections.append(conn)
    return HarImport(RecordedSession(1, label, connections), upstream, skipped, response_headers)


# A message's ``time`` is since the epoch, in seconds (Chrome, mitmproxy) or milliseconds (Playwright):
# a value above this is milliseconds (in seconds it would be after the year 5000).
MILLISECONDS_ABOVE = 1e11
# Whatever the unit, a message comes at or after its entry's startedDateTime (which has millisecond
# precision, hence the slack) and within this long of it; a time that fits neither unit is skipped.
EARLY_SLACK_US = 1_000_000
LONGEST_CONNECTION_US = 30 * 24 * 3600 * 1_000_000


def message_time(at: float, opened_us: int) -> int | None:
    """A message's ``time`` as microseconds since the epoch, in the unit its writer used, or None when
    it is no plausible time for a message of a connection opened at ``opened_us``."""
    us = at * 1_000 if at > MILLISECONDS_ABOVE else at * 1_000_000  # a float until it is known to be plausible
    if opened_us - EARLY_SLACK_US <= us <= opened_us + LONGEST_CONNECTION_US:
        return round(us)
    return None


def _frame(conn_id: int, opened_us: int, message: Any, skip: Any) -> RecordedFrame | None:
    if not isinstance(message, dict):
        skip("a message that is not an object")
        return None
    kind, at, opcode, data = message.get("type"), message.get("time"), message.get("opcode"), message.get("data")
    if kind == "error":
        skip("an \"error\" row (a frame error the browser saw)")
        return None
    if kind not in ("send", "receive"):
        skip("a message whose type is not send, receive or error")
        return None
    if not _number(at) or not isinstance(data, str) or opcode is None:
        skip("a message without a numeric time, an opcode or data")
        return None
    sender: Sender = "client" if kind == "send" else "server"
    ts = message_time(at, opened_us)
    if ts is None:
        skip("a message whose time is neither seconds nor milliseconds since the epoch at or after its "
             "entry's startedDateTime")
        return None
    if opcode == 1:
        return RecordedFrame(conn_id, 0, ts, sender, "text", data)
    try:
        payload = base64.b64decode(data, validate=True)
    except (ValueError, TypeError):
        skip("a binary message whose data is not base64")
        return None
    if opcode == 2:
        return RecordedFrame(conn_id, 0, ts, sender, "binary", None, payload)
    skip(f"a message with opcode {opcode} (only 1 text and 2 binary are data)")
    return None


def _object(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one for anything else."""
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> TypeGuard[float]:
    """A finite JSON number (not a bool, an infinity or NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _direction(frame: RecordedFrame) -> str:
    return "send" if frame.sender == "client" else "receive"


def _header_list(headers: dict[str, Any] | None) -> list[dict[str, str]]:
    result = []
    for name, value in (headers or {}).items():
        for one in value if isinstance(value, list) else [value]:
            result.append({"name": name, "value": str(one)})
    return result


def _header_object(headers: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for header in headers if isinstance(headers, list) else []:
        if isinstance(header, dict) and isinstance(header.get("name"), str):
            name, value = header["name"], str(header.get("value", ""))
            if name in result:
                previous = result[name]
                result[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
            else:
                result[name] = value
    return result


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")

