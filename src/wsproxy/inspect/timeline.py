"""What `wsproxy sessions`, `connections` and `show` read: summaries and a message timeline."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsproxy.store.query import run_query
from wsproxy.store.schema import USER_NAME_SQL
from wsproxy.store.sql import QueryResult

SESSIONS_SQL = """
SELECT s.session_id, s.label, s.started_at, s.ended_at,
       round(date_diff('millisecond', s.started_at, coalesce(s.ended_at, s.started_at)) / 1000.0, 1) AS seconds,
       (SELECT count(*) FROM connections c WHERE c.session_id = s.session_id) AS connections,
       (SELECT count(*) FROM messages m WHERE m.session_id = s.session_id) AS messages,
       (SELECT count(*) FROM violations v WHERE v.session_id = s.session_id AND v.severity = 'error') AS errors,
       (SELECT count(*) FROM violations v WHERE v.session_id = s.session_id AND v.severity = 'warning') AS warnings,
       s.upstream
FROM sessions s ORDER BY s.session_id
"""

CONNECTIONS_SQL = """
SELECT c.conn_id, c.path || CASE WHEN c.query <> '' THEN '?' || c.query ELSE '' END AS url, c.opened_at,
       round(date_diff('millisecond', c.opened_at, coalesce(c.closed_at, c.opened_at)) / 1000.0, 3) AS seconds,
       (SELECT count(*) FROM messages m WHERE m.conn_id = c.conn_id AND m.sender = 'client') AS sent,
       (SELECT count(*) FROM messages m WHERE m.conn_id = c.conn_id AND m.sender = 'server') AS received,
       c.status, c.close_code, c.closed_by,
       (SELECT count(*) FROM violations v WHERE v.conn_id = c.conn_id) AS findings, c.error
FROM connections c WHERE c.session_id = $session ORDER BY c.conn_id
"""

# One row per frame of the timeline, with the response latency and the findings of that frame.
TIMELINE_SQL = f"""
SELECT f.conn_id, f.seq, f.ts, f.sender, f.kind, f.msg_type, f.msg_id,
       coalesce(f.payload_type, f.event_type) AS type_name, f.event_id, left(f.text, 400) AS text, f.size,
       f.close_code, {USER_NAME_SQL} AS user_name,
       (SELECT e.latency_ms FROM exchanges e WHERE e.conn_id = f.conn_id AND e.response_seq = f.seq) AS latency_ms,
       (SELECT string_agg(v.severity || ' ' || v.code || ': ' || v.message, '\n' ORDER BY v.code)
        FROM violations v WHERE v.conn_id = f.conn_id AND v.seq = f.seq) AS findings,
       (SELECT string_agg(i.action || coalesce(': ' || i.detail, '') || '  (' ||
                          CASE coalesce(to_json(i)->>'source', 'inject')  -- source: schema 7
                               WHEN 'inject' THEN '--inject ' || i.rule WHEN 'ui' THEN i.rule || ', in the web view'
                               WHEN 'api' THEN i.rule || ', over the API' ELSE i.rule || ', by wsproxy' END || ')', '\n')
        FROM injections i WHERE i.conn_id = f.conn_id AND i.seq = f.seq) AS injected
FROM frames f JOIN connections c USING (conn_id)
WHERE c.session_id = $session AND ($conn IS NULL OR f.conn_id = $conn)
  AND f.ts >= CAST($since AS TIMESTAMPTZ) - INTERVAL 10 SECOND
ORDER BY f.ts, f.conn_id, f.seq
LIMIT $limit
"""


@dataclass
class TimelineRow:
    conn_id: int
    seq: int
    ts: Any
    sender: str
    kind: str
    msg_type: str | None
    msg_id: str | None
    type_name: str | None
    event_id: int | None
    text: str | None
    size: int
    close_code: int | None
    user_name: str | None
    latency_ms: float | None
    findings: str | None
    injected: str | None = None  # what --inject rules did to this frame


def newest_session(path: Path) -> int:
    result = run_query(path, "SELECT max(session_id) FROM sessions")
    if not result.rows or result.rows[0][0] is None:
        from wsproxy.store.files import StoreError
        raise StoreError("the recording holds no session yet")
    return result.rows[0][0]


def sessions(path: Path) -> QueryResult:
    return run_query(path, SESSIONS_SQL)


def connections(path: Path, session_id: int) -> QueryResult:
    return _named(path, CONNECTIONS_SQL, {"session": session_id})


def timeline(path: Path, session_id: int, conn_id: int | None = None, since: Any = None,
             limit: int = 1_000_000) -> list[TimelineRow]:
    """The session's frames in time order; with ``since`` (a time), those from 10 s before it on: the
    workers of ``record --workers`` write independently, so a frame can land after a later one was read
    (``show --follow`` skips the ones it has shown)."""
    result = _named(path, TIMELINE_SQL, {"session": session_id, "conn": conn_id,
                                        "since": since or "1970-01-01 00:00:00+00", "limit": limit})
    return [TimelineRow(*row) for row in result.rows]


def _named(path: Path, sql: str, params: dict[str, Any]) -> QueryResult:
    """Named parameters ($name), numbered in order of first use (the live endpoint takes a list)."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in order:
            order.append(match.group(1))
        return f"${order.index(match.group(1)) + 1}"
    return run_query(path, re.sub(r"\$([a-z]+)", number, sql), [params[name] for name in order])
