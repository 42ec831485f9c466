"""Every recorded row, once: typed Structs whose fields are the columns, in one column spec.

The relay and the live checker build these rows (``frame_row``, ``violation_row``,
``ConnectionOpened``, ``ConnectionClosed``); the writer turns a batch of them into Arrow
columns by field name (``store.batches``) and inserts them ``BY NAME``. A column is added in one
place, its Struct, with the type it has in DuckDB: nothing positional can shift.

Table and column names are an interface (users' SQL depends on them): add freely, never rename.
Secrets are redacted here, before anything reaches the recording; redaction never touches what
is relayed. Core module: standard library and msgspec only.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from typing import Annotated, Any
from urllib.parse import unquote_plus

import msgspec

from wsproxy.core.protocol import Event, Finding, ParsedMessage, Request, Response


def _column(kind: str) -> msgspec.Meta:
    return msgspec.Meta(extra={"column": kind})


# Column kinds, as DuckDB stores them (store.batches maps each to its Arrow type).
Int32 = Annotated[int, _column("int32")]
Int64 = Annotated[int, _column("int64")]
Micros = Annotated[int, _column("timestamp")]  # microseconds since the epoch; TIMESTAMPTZ in DuckDB
Text = Annotated[str, _column("string")]  # VARCHAR (or JSON text)
Bytes = Annotated[bytes, _column("binary")]
Bool = Annotated[bool, _column("bool")]


# Positional, unlike the other rows: it is built for every frame, in one place (``frame_row``), and
# keyword construction of its 19 fields cost 600 ns a frame more (measured: 150 vs 750 ns).
class FrameRow(msgspec.Struct, gc=False):
    """One ``frame_store`` row (the ``frames`` view adds ``payload`` back from its place in ``text``)."""

    conn_id: Int32
    seq: Int32
    ts: Micros
    sender: Text
    kind: Text
    size: Int64
    text: Text | None
    data: Bytes | None
    msg_type: Text | None
    msg_id: Text | None
    payload_type: Text | None
    event_type: Text | None
    event_id: Int64 | None
    payload: Text | None  # a copy, only when the payload could not be found in the text
    parse_error: Text | None
    close_code: Int32 | None
    payload_at: Int32 | None  # 1-based, in characters
    payload_len: Int32 | None
    delivered: Int32 | None = None  # times relayed when --inject changed it (0 dropped, 2 duplicated); None: once


class InjectionRow(msgspec.Struct, gc=False, kw_only=True):
    """One ``injections`` row: what an --inject rule, or a person (hands on the wire), did to a frame
    (``seq``) of a connection, or sent on it."""

    session_id: Int32
    conn_id: Int32
    seq: Int32
    ts: Micros
    sender: Text  # whose frame it was (core.vocab.Sender)
    action: Text  # what the rule did (core.vocab.InjectAction)
    rule: Text
    detail: Text | None  # what was sent instead (corrupt), how long (delay, pause), ...
    source: Text | None = None  # who acted (core.vocab.InjectionSource)
    original: Text | None = None  # the message as its sender sent it (edit, drop, corrupt)
    sent: Text | None = None  # what went out instead, or what was composed or resent


class ConnectionOpened(msgspec.Struct, gc=False, kw_only=True):
    """A ``connections`` row as it is known at the handshake."""

    conn_id: Int32
    session_id: Int32
    opened_at: Micros
    path: Text
    query: Text | None
    client_addr: Text | None
    subprotocol: Text | None
    request_headers: Text | None  # JSON
    response_headers: Text | None  # JSON
    status: Int32 | None  # None: not known (an imported capture that did not say)
    error: Text | None


class ConnectionClosed(msgspec.Struct, gc=False, kw_only=True):
    """What the relay learns of a connection when it ends."""

    conn_id: Int32
    closed_at: Micros
    close_code: Int32 | None
    close_reason: Text | None
    closed_by: Text | None
    error: Text | None


class ViolationRow(msgspec.Struct, gc=False, kw_only=True):
    """One ``violations`` row: a finding of the checker."""

    session_id: Int32
    conn_id: Int32 | None
    seq: Int32 | None
    ts: Micros | None
    code: Text
    severity: Text
    message: Text
    request_id: Text | None
    event_id: Int64 | None
    caused_by_injection: Bool = False  # on a connection an --inject rule had acted on
    pointer: Text | None = None  # --spec findings: where in the envelope (a JSON pointer)


def columns(row_type: type) -> tuple[tuple[str, str], ...]:
    """The (name, kind) of every column of a row Struct, in order."""
    hints = typing.get_type_hints(row_type, globalns=vars(sys.modules[__name__]), include_extras=True)
    result = []
    for name in typing.cast(msgspec.Struct, row_type).__struct_fields__:
        result.append((name, _kind(hints[name])))
    return tuple(result)


def _kind(hint: Any) -> str:
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    for option in typing.get_args(hint) if union else (hint,):  # ``Int32 | None``: the Int32
        if typing.get_origin(option) is Annotated:
            return option.__metadata__[0].extra["column"]
    raise TypeError(f"{hint!r} is not a column type (use Int32, Int64, Micros, Text, Bytes or Bool)")


def frame_row(conn_id: int, seq: int, ts_us: int, sender: str, kind: str, data: str | bytes,
              parsed: ParsedMessage | None, close_code: int | None = None) -> FrameRow:
    """One ``frame_store`` row. ``ts_us``: microseconds since the epoch.

    Text frames keep their text exactly (``text``); binary, ping and pong frames keep
    their bytes (``data``); a close frame keeps its reason as text and its code. A
    payload is kept as its place in the text (1-based, in characters), not as a copy.
    """
    text: str | None
    blob: bytes | None
    if kind == "text":
        text, blob = typing.cast(str, data), None  # a text frame's data is its text (aiohttp, every reader)
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    elif kind == "close":
        text, blob = typing.cast(str, data), None  # a close frame's data is its reason
        size = len(text.encode("utf-8", "surrogatepass")) + (2 if close_code else 0)
    else:
        text, blob = None, bytes(typing.cast(bytes, data))
        size = len(blob)
    if parsed is None or parsed.envelope is None:
        return FrameRow(conn_id, seq, ts_us, sender, kind, size, text, blob, None, None, None, None, None,
                        None, parsed.parse_error if parsed is not None and kind == "text" else None, close_code,
                        None, None)
    # One test of the envelope's type instead of ParsedMessage's properties (each tests it again):
    # this runs for every frame.
    env = parsed.envelope
    msg_id: str | None = None
    payload_type: str | None = None
    event_type: str | None = None
    event_id: int | None = None
    if type(env) is Request:
        msg_type, msg_id, payload_type = "request", env.id, env.payloadType
    elif type(env) is Response:
        msg_type, msg_id = "response", env.id
    else:
        event = typing.cast(Event, env)
        msg_type, event_type, event_id = "event", event.eventType, event.id
    payload, at, length = _payload_place(env.payload, text)
    return FrameRow(conn_id, seq, ts_us, sender, kind, size, text, blob, msg_type, msg_id, payload_type,
                    event_type, event_id, payload, parsed.parse_error if parsed.findings else None, close_code,
                    at, length)


def violation_row(session_id: int, finding: Finding, caused_by_injection: bool = False) -> ViolationRow:
    """One ``violations`` row; ``ts`` in microseconds since the epoch."""
    return ViolationRow(session_id=session_id, conn_id=finding.conn_id, seq=finding.seq, ts=finding.ts,
                        code=finding.code, severity=finding.severity, message=finding.message,
                        request_id=finding.request_id, event_id=finding.event_id,
                        caused_by_injection=caused_by_injection, pointer=finding.pointer)


def _payload_place(raw: msgspec.Raw | None, text: str | None) -> tuple[str | None, int | None, int | None]:
    """(payload, payload_at, payload_len): where the payload lies in ``text``, or a copy if it cannot be found."""
    if not raw:
        return None, None, None
    payload = str(raw, "utf-8", "replace")
    at = -1 if text is None else _find_payload(text, payload)
    if at < 0:
        return payload, None, None
    return None, at + 1, len(payload)


_JSON_SPACE = frozenset(" \t\r\n")


def _find_payload(text: str, payload: str) -> int:
    """Where ``payload`` starts in ``text``. It is usually the envelope's last member, so that
    place is tried first: searching a 64 KiB message costs ~80 µs, the comparison ~2 µs."""
    end = len(text) - 1  # the envelope's closing brace
    if end < 0:
        return text.find(payload)
    if text[end] in _JSON_SPACE:
        end = len(text.rstrip()) - 1
    while end > 0 and text[end - 1] in _JSON_SPACE:
        end -= 1
    at = end - len(payload)
    if at >= 0 and text.startswith(payload, at):
        return at
    # The payload is a slice of the text, so it is found; an earlier identical substring
    # (a payload `1` inside a timestamp) is as good, since only its content is read back.
    return text.find(payload)


# --- redaction ---

SECRET_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
SECRET_QUERY_NAMES = frozenset({"token", "access_token", "auth", "key", "password"})
REDACTED = "[REDACTED]"
_encode = msgspec.json.encode


def redact_headers(headers: list[tuple[str, str]], redact: bool = True) -> str:
    """Headers as a JSON object (repeated names become lists), secrets replaced."""
    result: dict[str, Any] = {}
    for name, value in headers:
        if redact and name.lower() in SECRET_HEADERS:
            value = REDACTED
        if name in result:
            previous = result[name]
            result[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            result[name] = value
    return _encode(result).decode()


_QUERY_PART = re.compile(r"([^&=]*)(=?)([^&]*)")


def redact_query(query: str, redact: bool = True) -> str:
    """The raw query string with the values of secret parameters replaced; order kept."""
    if not redact or not query:
        return query

    def one(match: re.Match[str]) -> str:
        name, equals, _value = match.groups()
        if equals and unquote_plus(name).lower() in SECRET_QUERY_NAMES:
            return f"{name}={REDACTED}"
        return match.group(0)
    return _QUERY_PART.sub(one, query)
