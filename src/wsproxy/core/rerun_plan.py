"""What a rerun does, in which order: a recorded session's client side as steps, per copy.

Pure: ``schedule`` turns a session into steps (open, send, close) in recorded order, each waiting for
the server messages recorded before it on its connection; ``Variation`` makes copy N of a session
(``--vary``, ``--rename``); ``rebind_client_text`` puts the live server's values into a client
message. The aiohttp shell (``rerun.runner``) carries the steps out.

Core module: standard library and msgspec only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

import msgspec

from wsproxy.core.errors import UserError
from wsproxy.core.recorded import RecordedConnection, RecordedFrame, RecordedSession
from wsproxy.core.replay_match import render_frame
from wsproxy.core.rerun_compare import UNBOUND, Bindings, Path, Rules
from wsproxy.core.vocab import StepAction

# Headers the WebSocket client makes itself for each handshake: never replayed.
HANDSHAKE_HEADERS = frozenset({"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
                               "sec-websocket-extensions", "sec-websocket-protocol", "content-length",
                               "transfer-encoding", "keep-alive", "proxy-connection", "te", "trailer"})


class RerunOptionError(UserError, ValueError):
    """A --vary, --rename or --header value that cannot be used."""


@dataclass(frozen=True, slots=True)
class Step:
    """Open, send on or close recorded connection ``conn_id`` once the server messages recorded on it
    before frame ``after`` have come (``None``: all of them; or the wait timed out)."""

    conn_id: int
    action: StepAction
    after: int | None
    frame: RecordedFrame | None = None  # send: the client frame; close: its close frame, if recorded


def schedule(session: RecordedSession) -> list[Step]:
    """Every client action of the session in recorded order (opens, messages, closes).

    Running them one after another in this order keeps the causal order across connections (User1's
    request before the delivered User2 sends for it); waiting for the server messages recorded before
    each keeps it within a connection."""
    timeline: list[tuple[int, int, int, int, Step]] = []
    for conn in session.connections:
        timeline.append((conn.opened_us, 0, conn.conn_id, 0, Step(conn.conn_id, "open", 0)))
        if conn.status != 101:
            continue  # a refused handshake carries no traffic
        server_closed = False
        client_closed = False
        for frame in conn.frames:
            if frame.sender == "server":
                server_closed = server_closed or frame.kind == "close"
                continue
            if frame.kind in ("text", "binary"):
                timeline.append((frame.ts_us, 1, conn.conn_id, frame.seq, Step(conn.conn_id, "send", frame.seq, frame)))
            elif frame.kind == "close" and not server_closed and not client_closed:
                client_closed = True  # (a close answering the server's is the WebSocket client's job)
                timeline.append((frame.ts_us, 1, conn.conn_id, frame.seq, Step(conn.conn_id, "close", frame.seq, frame)))
        # a client close, or no close on record (a HAR capture, a recorder that was killed): the client
        # closes after its last frame, so that it does not linger and receive what it never did
        if conn.closed_by in ("client", None) and not client_closed and not server_closed:
            end = conn.closed_us if conn.closed_us is not None else (conn.frames[-1].ts_us if conn.frames else conn.opened_us)
            timeline.append((end, 2, conn.conn_id, 1 << 31, Step(conn.conn_id, "close", None)))
    timeline.sort(key=lambda entry: entry[:4])
    return [entry[4] for entry in timeline]


def replay_headers(conn: RecordedConnection, supplied: dict[str, str]) -> dict[str, str]:
    """The recorded request headers to send again: not the handshake's own, not redacted ones
    (``supplied`` gives those, and overrides any)."""
    from wsproxy.core.rows import REDACTED
    headers = {}
    for name, value in conn.request_headers.items():
        if name.lower() in HANDSHAKE_HEADERS or not isinstance(value, str) or REDACTED in value:
            continue
        headers[name] = value
    lowered = {name.lower(): name for name in headers}
    for name, value in supplied.items():
        headers.pop(lowered.get(name.lower(), name), None)
        headers[name] = value
    return headers


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise RerunOptionError(f"--header {text!r}: write NAME:VALUE, e.g. --header 'Authorization: Bearer abc'")
    return name.strip(), value.strip()


def parse_vary(text: str) -> tuple[str, str]:
    where, sep, name = text.partition(":")
    if not sep or where not in ("query", "header") or not name:
        raise RerunOptionError(f"--vary {text!r}: write query:NAME or header:NAME, e.g. --vary query:user")
    return where, name


def parse_rename(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old:
        raise RerunOptionError(f"--rename {text!r}: write FROM=TO, e.g. --rename User1=User1-{{copy}}")
    return old, new


@dataclass(slots=True)
class Variation:
    """How copy ``copy`` differs from the recording: the values named by ``vary`` get the copy number
    appended (wherever that value appears as a whole string: query, headers, payloads), and each
    ``rename`` FROM=TO is substituted everywhere, ``{copy}`` in TO being the copy number."""

    copy: int
    vary: list[tuple[str, str]] = field(default_factory=list)
    renames: list[tuple[str, str]] = field(default_factory=list)

    def apply(self, session: RecordedSession) -> RecordedSession:
        if not self.vary and not self.renames:
            return session
        whole = {}
        for conn in session.connections:
            for where, name in self.vary:
                value = _named_value(conn, where, name)
                if value:
                    whole[value] = f"{value}{self.copy}"
        renames = [(old, new.replace("{copy}", str(self.copy))) for old, new in self.renames]

        def text(value: str) -> str:
            value = whole.get(value, value)
            for old, new in renames:
                value = value.replace(old, new)
            return value

        connections = []
        for conn in session.connections:
            query = urlencode([(text(k), text(v)) for k, v in parse_qsl(conn.query, keep_blank_values=True)])
            headers = {name: text(value) if isinstance(value, str) else value
                       for name, value in conn.request_headers.items()}
            frames = [replace(f, text=_rewrite_strings(f.text, text)) if f.kind == "text" and f.text else f
                      for f in conn.frames]
            connections.append(replace(conn, path=text(conn.path), query=query, request_headers=headers, frames=frames))
        return replace(session, connections=connections)


def _named_value(conn: RecordedConnection, where: str, name: str) -> str | None:
    if where == "query":
        return dict(parse_qsl(conn.query, keep_blank_values=True)).get(name)
    return next((v for k, v in conn.request_headers.items() if k.lower() == name.lower() and isinstance(v, str)), None)


def _rewrite_strings(text: str, change) -> str:
    """Every string value (not key) of a JSON text through ``change``; other text unchanged."""
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return change(text)

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return change(node)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            return {key: walk(item) for key, item in node.items()}
        return node

    rewritten = walk(value)
    return text if rewritten == value else msgspec.json.encode(rewritten).decode()


def client_text(frame: RecordedFrame, rules: Rules, bindings: Bindings, user: str, now_us: int) -> str:
    """A recorded client text frame as the rerun sends it: its timestamp shifted to now (in its unit),
    the live server's values in it."""
    _, text = render_frame(frame, now_us)
    return rebind_client_text(text, rules, bindings, user)


def rebind_client_text(text: str, rules: Rules, bindings: Bindings, user: str) -> str:
    """The client message with the live server's values where the recording had its own (a
    ``delivered`` for 125 is sent for 7); values never bound are sent as recorded."""
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text
    if not isinstance(value, dict):
        return text
    envelope = value.get("type")
    changed = False
    for rule in rules.rebinds:
        if rule.envelope is not None and rule.envelope != envelope:
            continue
        for parent, key in _locate(value, rule.path):
            recorded = parent[key]
            live = bindings.live(rule.scope, user if rule.per_user else "", recorded)
            if live is not UNBOUND and live != recorded:
                parent[key] = live
                changed = True
    return msgspec.json.encode(value).decode() if changed else text


def _locate(node: Any, path: Path) -> list[tuple[Any, Any]]:
    """(container, key) of every place ``path`` reaches in ``node``."""
    if not path:
        return []
    head, rest = path[0], path[1:]
    if head == "*":
        keys: Iterable[Any] = range(len(node)) if isinstance(node, list) else []
    elif isinstance(head, int):
        keys = [head] if isinstance(node, list) and head < len(node) else []
    else:
        keys = [head] if isinstance(node, dict) and head in node else []
    places = []
    for key in keys:
        if rest:
            places += _locate(node[key], rest)
        elif not isinstance(node[key], (dict, list)):
            places.append((node, key))
    return places
