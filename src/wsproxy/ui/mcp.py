"""``wsproxy mcp``: a recording served to coding agents over the Model Context Protocol (stdio), with
the official ``mcp`` SDK. The tools read through the web view's reader (``ui.reader``: a file, a
folder of segments, or a recording being written) and its views, so an agent sees what the page
shows; ``query`` runs through the same guard and time limit as ``wsproxy query`` (``store.sql``).
Read-only: nothing here changes a recording or touches the wire. docs/mcp.md.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from wsproxy import __version__
from wsproxy.core.errors import UserError
from wsproxy.ui import views
from wsproxy.ui.filters import FrameFilter
from wsproxy.ui.reader import Reader

PAGE_LIMIT = 500  # rows a tool answers at most (page with offset)
TEXT_CHARS = 65_536  # characters of one message's text a frames answer carries

INSTRUCTIONS = """\
A wsproxy recording: WebSocket traffic of a JSON chat protocol captured by a man-in-the-middle proxy \
(requests from the client with string ids, responses from the server with the same id, events with \
integer ids that must arrive in order). Start with `sessions`, then `connections` of a session, then \
`frames` of a connection. `findings` are the protocol checker's verdicts (unanswered requests, event id \
gaps, malformed messages); `exchanges` pairs each request with its response and latency. `query` runs \
read-only DuckDB SQL over the tables sessions, connections, frames, messages, exchanges, events, \
violations, injections when the other tools cannot answer."""


Tool = TypeVar("Tool", bound=Callable[..., Awaitable[Any]])


def _said(tool: Tool) -> Tool:
    """Our errors (a bad query, a session that is not there) reach the agent as their one line: the SDK
    shows only a ToolError's message and hides every other exception's."""
    @functools.wraps(tool)
    async def answer(*args: Any, **kwargs: Any) -> Any:
        try:
            return await tool(*args, **kwargs)
        except UserError as exc:
            raise ToolError(str(exc)) from None
    return answer  # type: ignore[return-value]


def build_server(reader: Reader) -> MCPServer:
    """The MCP server and its tools over ``reader``."""
    server = MCPServer("wsproxy", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool()
    @_said
    async def sessions() -> dict[str, Any]:
        """List the recording sessions (one per `wsproxy record` run): id, label, start and end time
        (ISO 8601), the upstream server, and how many connections, frames and findings each has.
        Use a session_id from here in `connections`, `findings` and `exchanges`."""
        result = await reader.query("""
            SELECT s.session_id, s.label, s.started_at, s.ended_at, s.upstream,
                   (SELECT count(*) FROM connections c WHERE c.session_id = s.session_id) AS connections,
                   (SELECT count(*) FROM frames f JOIN connections c USING (conn_id)
                     WHERE c.session_id = s.session_id) AS frames,
                   (SELECT count(*) FROM violations v WHERE v.session_id = s.session_id) AS findings
            FROM sessions s ORDER BY s.session_id""")
        return {"sessions": result.records()}

    @server.tool()
    @_said
    async def connections(session_id: int | None = None) -> dict[str, Any]:
        """List the WebSocket connections of a session (default: the newest session): conn_id, user
        (the ?user= query parameter), path, HTTP status of the handshake, open/close times and close
        code, who closed, messages sent and received, and findings by severity. Use a conn_id in
        `frames`, `findings` or `exchanges`."""
        session = await views.session_id(reader, session_id)
        return {"session_id": session, "connections": await views.connections(reader, session)}

    @server.tool()
    @_said
    async def frames(conn_id: int, offset: int = 0, limit: int = 50,
                     direction: Literal["client", "server"] | None = None,
                     type: Literal["request", "response", "event", "invalid", "binary", "ping", "pong", "close"]
                     | None = None,
                     name: str | None = None, finding: str | None = None, search: str | None = None,
                     where: str | None = None, full_text: bool = False) -> dict[str, Any]:
        """One connection's frames in order (seq), a page at a time: time, seq, sender ("client" sent
        it to the server, "server" to the client), envelope type, payloadType/eventType (`name`),
        request or event id, size, a preview of the payload, the request/response pair with its
        latency, and the findings on that frame. Filters: direction (the sender), type, name, finding
        ("any" or a rule code such as "unanswered-request"), search (text inside the message), where
        (an SQL condition over the frames view, e.g. "size > 1000"). full_text=true adds each
        message's whole text (up to 64 KiB each). `total` is how many frames pass the filter."""
        page = await views.frames(reader, conn_id, FrameFilter(direction, type, name, finding, search, where),
                                  views.Bounds(offset, min(limit, PAGE_LIMIT)))
        if full_text and page["rows"]:
            seqs = [row["seq"] for row in page["rows"]]
            texts = await reader.query(
                f"SELECT seq, left(text, {TEXT_CHARS}) FROM frames WHERE conn_id = ? AND seq BETWEEN ? AND ?",
                [conn_id, min(seqs), max(seqs)])
            by_seq = dict(texts.rows)
            for row in page["rows"]:
                row["text"] = by_seq.get(row["seq"])
        return page

    @server.tool()
    @_said
    async def findings(session_id: int | None = None, conn_id: int | None = None, code: str | None = None,
                       severity: Literal["error", "warning", "info"] | None = None,
                       offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """The protocol checker's findings (the `violations` table) of a session (default: the newest),
        in time order: conn_id, seq of the frame concerned (null: about the connection as a whole),
        time, rule code, severity, message, request or event id, whether a deliberate injection
        (--inject or a person's edit) caused it, and for a spec-* finding (record --spec) the JSON
        pointer of what failed in the envelope. Also `by_code`: how many of each rule."""
        session = await views.session_id(reader, session_id)
        where = "session_id = ? AND (? IS NULL OR conn_id = ?) AND (? IS NULL OR code = ?) AND (? IS NULL OR severity = ?)"
        params = [session, conn_id, conn_id, code, code, severity, severity]
        rows = await reader.query(f"SELECT conn_id, seq, ts, code, severity, message, request_id, event_id, "
                                  f"coalesce(to_json(v)->>'caused_by_injection' = 'true', false) AS caused_by_injection, "
                                  f"to_json(v)->>'pointer' AS pointer "  # older recordings have no such column
                                  f"FROM violations v WHERE {where} ORDER BY ts, conn_id, seq LIMIT ? OFFSET ?",
                                  [*params, min(limit, PAGE_LIMIT), max(0, offset)])
        counts = await reader.query(f"SELECT code, severity, count(*) AS count FROM violations WHERE {where} "
                                    "GROUP BY ALL ORDER BY count DESC", params)
        return {"session_id": session, "findings": rows.records(), "by_code": counts.records()}

    @server.tool()
    @_said
    async def exchanges(session_id: int | None = None, conn_id: int | None = None,
                        payload_type: str | None = None, unanswered_only: bool = False,
                        slowest_first: bool = False, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """Requests paired with their responses (the `exchanges` view) of a session (default: the
        newest): conn_id, request_id, payloadType, request and response seq and time, latency_ms, and
        the error code of an error response. unanswered_only=true lists requests that never got a
        response; slowest_first=true orders by latency. Also per payloadType: count, answered, p50 and
        p95 latency."""
        session = await views.session_id(reader, session_id)
        where = ("session_id = ? AND (? IS NULL OR conn_id = ?) AND (? IS NULL OR payload_type = ?) "
                 "AND (NOT ? OR response_seq IS NULL)")
        params = [session, conn_id, conn_id, payload_type, payload_type, unanswered_only]
        order = "latency_ms DESC NULLS LAST" if slowest_first else "request_ts, conn_id, request_seq"
        rows = await reader.query(f"SELECT conn_id, request_id, payload_type, request_seq, response_seq, request_ts, "
                                  f"response_ts, latency_ms, error_code FROM exchanges WHERE {where} "
                                  f"ORDER BY {order} LIMIT ? OFFSET ?", [*params, min(limit, PAGE_LIMIT), max(0, offset)])
        summary = await reader.query(f"SELECT payload_type, count(*) AS count, count(response_seq) AS answered, "
                                     f"quantile_cont(latency_ms, 0.5) AS p50_ms, quantile_cont(latency_ms, 0.95) AS p95_ms "
                                     f"FROM exchanges WHERE {where} GROUP BY payload_type ORDER BY count DESC", params)
        return {"session_id": session, "exchanges": rows.records(), "by_payload_type": summary.records()}

    @server.tool()
    @_said
    async def query(sql: str, limit: int = 200) -> dict[str, Any]:
        """Run one read-only DuckDB SQL statement (SELECT, WITH, DESCRIBE, SUMMARIZE, ...) over the
        recording, with the same guard and time limit as `wsproxy query`: no writes, no files, no
        settings. Tables and views: sessions, connections, frames (conn_id, seq, ts, sender, kind,
        size, text, msg_type, msg_id, payload_type, event_type, event_id, payload JSON, parse_error,
        close_code, delivered), messages, exchanges, events, violations, injections. Example:
        SELECT payload_type, count(*) FROM frames WHERE msg_type = 'request' GROUP BY ALL.
        Answers columns, rows as objects (at most `limit`, up to 500) and whether more were cut off."""
        result = await reader.query(sql)
        keep = max(0, min(limit, PAGE_LIMIT))
        return {"columns": result.columns, "rows": result.records()[:keep],
                "truncated": result.truncated or len(result.rows) > keep}

    return server
