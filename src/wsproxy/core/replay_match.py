"""What a replay compares and what it sends: message shapes for matching, binding keys, and the
recorded frame rewritten for the live client (its request id, a fresh timestamp).

Core module: standard library and msgspec only.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import msgspec

from wsproxy.core.recorded import RecordedFrame

_json_decode = msgspec.json.Decoder().decode
_json_encode = msgspec.json.encode


class Shape(NamedTuple):
    """What matching compares: ``signature`` (type, payloadType/eventType) and ``body`` (the object
    without ``id`` and ``timestamp``); ``request_id`` is kept aside for the id rewrite."""

    signature: tuple[Any, Any]
    body: Any
    request_id: str | None = None

    def same(self, other: Shape) -> bool:
        return self.signature == other.signature and self.body == other.body


def shape(kind: str, data: str | bytes | None) -> Shape:
    """The shape of a message; anything that is not a JSON object is compared raw."""
    if kind == "text" and data:
        try:
            value = _json_decode(data)
        except (msgspec.DecodeError, UnicodeError, ValueError):
            value = None
        if isinstance(value, dict):
            signature = (value.get("type"), value.get("payloadType", value.get("eventType")))
            body = {k: v for k, v in value.items() if k not in ("id", "timestamp")}
            request_id = value.get("id") if value.get("type") == "request" and isinstance(value.get("id"), str) \
                else None
            return Shape(signature if isinstance(signature[0], str) else ("json", None), body, request_id)
    return Shape((kind, None), data)


def describe(shape_: Shape | None, full: bool = False) -> str:
    if shape_ is None:
        return "nothing"
    (kind, sub), body = shape_.signature, shape_.body
    if kind in ("text", "binary", "json"):
        raw = body if isinstance(body, (str, bytes)) else _json_encode(body).decode()
        text = raw if isinstance(raw, str) else f"<{len(raw)} bytes>"
        return f"{kind} {text[:80] if not full else text!r}"
    payload = _json_encode(body.get("payload")).decode() if isinstance(body, dict) else ""
    if not full and len(payload) > 80:
        payload = payload[:77] + "..."
    return f"{kind} {sub} {payload}" if sub is not None else f"{kind} {payload}"


def similarity(a: Any, b: Any) -> int:
    """How alike two message bodies are: equal top-level fields, and equal payload fields."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return int(a == b)
    score = sum(1 for k, v in a.items() if b.get(k) == v)
    pa, pb = a.get("payload"), b.get("payload")
    if isinstance(pa, dict) and isinstance(pb, dict):
        score += sum(1 for k, v in pa.items() if pb.get(k) == v)
    return score


def response_fields(frame: RecordedFrame) -> tuple[bool, str | None]:
    """Whether a recorded server frame is a response, and the request id it answers (read once,
    when the plan is built)."""
    if frame.kind != "text" or frame.text is None or '"response"' not in frame.text:
        return False, None
    try:
        value = _json_decode(frame.text)
    except (msgspec.DecodeError, UnicodeError, ValueError):
        return False, None
    if not isinstance(value, dict) or value.get("type") != "response":
        return False, None
    request_id = value.get("id")
    return True, request_id if isinstance(request_id, str) else None


def bind_value(key: str, query: str, headers: dict[str, Any]) -> str | None:
    source, _, name = key.partition(":")
    if source == "query":
        return next((v for k, v in parse_qsl(query, keep_blank_values=True) if k == name), None)
    lowered = name.lower()
    value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value if isinstance(value, str) or value is None else str(value)


# --- what goes on the wire ---

def render_frame(frame: RecordedFrame | None, now_us: int, request_id: str | None = None,
           text: str | None = None) -> tuple[str, Any]:
    """The message to send: ("text", str), ("binary", bytes) or ("close", (code, reason)): ``text`` as it
    is when given, else the recorded ``frame`` with ``request_id`` as a response's id.

    A recorded JSON envelope gets the live request id (responses) and its timestamp shifted by
    the time since it was recorded, in the recorded unit (seconds, or milliseconds above 1e11);
    anything else goes out exactly as recorded."""
    if text is not None:
        return "text", text
    assert frame is not None
    if frame.kind == "binary":
        return "binary", frame.data or b""
    if frame.kind == "close":
        return "close", (frame.close_code or 1000, frame.text or "")
    text = frame.text or ""
    try:
        value = _json_decode(text)
    except (msgspec.DecodeError, UnicodeError, ValueError):
        return "text", text
    if not isinstance(value, dict):
        return "text", text
    if request_id is not None and value.get("type") == "response":
        value["id"] = request_id
    stamp = value.get("timestamp")
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
        shift = (now_us - frame.ts_us) / (1_000 if stamp > 1e11 else 1_000_000)
        shifted = stamp + shift
        value["timestamp"] = round(shifted) if isinstance(stamp, int) else round(shifted, 6)
    return "text", _json_encode(value).decode()
