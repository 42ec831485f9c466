"""The read side of a recording: pick a session, stream its traffic, load it whole."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import msgspec

from wsproxy.core.recorded import RecordedConnection, RecordedFrame, RecordedSession
from wsproxy.store.files import StoreError


@dataclass(frozen=True)
class SessionInfo:
    session_id: int
    label: str | None
    started_at: Any
    ended_at: Any
    upstream: str | None
    connections: int
    frames: int


def session_info(con: duckdb.DuckDBPyConnection, session_id: int | None) -> SessionInfo:
    """The session asked for, or the newest one."""
    if session_id is None:
        row = con.execute("SELECT max(session_id) FROM sessions").fetchone()
        if row is None or row[0] is None:
            raise StoreError("the recording holds no session yet")
        session_id = row[0]
    row = con.execute(
        "SELECT s.session_id, s.label, s.started_at, s.ended_at, s.upstream, "
        " (SELECT count(*) FROM connections c WHERE c.session_id = s.session_id), "
        " (SELECT count(*) FROM frames f JOIN connections c USING (conn_id) WHERE c.session_id = s.session_id) "
        "FROM sessions s WHERE s.session_id = ?", [session_id]).fetchone()
    if row is None:
        known = [r[0] for r in con.execute("SELECT session_id FROM sessions ORDER BY 1").fetchall()]
        raise StoreError(f"no session {session_id} in this recording (sessions: "
                         f"{', '.join(map(str, known)) or 'none'})")
    return SessionInfo(*row)


# One observation of recorded traffic, in the order the live checker saw it:
# ("open", conn_id, ts_us) / ("frame", conn_id, ts_us, seq, sender, kind, text, data) / ("close", conn_id, ts_us)
Observation = tuple[Any, ...]

_OBSERVATIONS = """
SELECT * FROM (
    SELECT 0 AS rank, conn_id, epoch_us(opened_at) AS ts, NULL AS seq, NULL AS sender, NULL AS kind,
           NULL AS text, NULL AS data
    FROM connections WHERE session_id = $session AND status = 101
    UNION ALL
    SELECT 1, f.conn_id, epoch_us(f.ts), f.seq, f.sender, f.kind, f.text, f.data
    FROM frames f JOIN connections c USING (conn_id)
    WHERE c.session_id = $session AND c.status = 101 AND f.kind IN ('text', 'binary')
    UNION ALL
    SELECT 2, conn_id, epoch_us(closed_at), NULL, NULL, NULL, NULL, NULL
    FROM connections WHERE session_id = $session AND status = 101 AND closed_at IS NOT NULL
) ORDER BY ts, rank, conn_id, seq
"""


# Since schema 5 (--inject) a frame counts as often as it was delivered (a dropped one not, a duplicated one
# twice), and what ``corrupt`` sent instead is what the other side received.
_DELIVERED_OBSERVATIONS = _OBSERVATIONS.replace(
    "FROM frames f JOIN connections c USING (conn_id)\n"
    "    WHERE c.session_id = $session AND c.status = 101 AND f.kind IN ('text', 'binary')",
    "FROM frames f JOIN connections c USING (conn_id) JOIN range(2) copies(n) ON copies.n < f.delivered\n"
    "    WHERE c.session_id = $session AND c.status = 101 AND f.kind IN ('text', 'binary')\n"
    "    UNION ALL\n"
    "    SELECT 1, i.conn_id, epoch_us(i.ts), i.seq, i.sender, 'text', i.detail, NULL\n"
    "    FROM injections i WHERE i.session_id = $session AND i.action = 'corrupt'")


def observations(con: duckdb.DuckDBPyConnection, session_id: int, batch: int = 10_000) -> Iterator[Observation]:
    """Connection opens, data frames (as delivered) and closes of one session, in time order, streamed."""
    delivered = con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'frames' "
                            "AND column_name = 'delivered'").fetchall()[0][0]
    result = con.execute(_DELIVERED_OBSERVATIONS if delivered else _OBSERVATIONS, {"session": session_id})
    while True:
        rows = result.fetchmany(batch)
        if not rows:
            return
        yield from rows


def last_time(con: duckdb.DuckDBPyConnection, session_id: int) -> int | None:
    """When the session ended (or its last recorded frame, if it never ended cleanly), in µs."""
    row = con.execute(
        "SELECT coalesce(epoch_us(s.ended_at), (SELECT max(epoch_us(f.ts)) FROM frames f JOIN connections c "
        "USING (conn_id) WHERE c.session_id = s.session_id)) FROM sessions s WHERE s.session_id = ?",
        [session_id]).fetchone()
    return None if row is None else row[0]


def load_session(con: duckdb.DuckDBPyConnection, session_id: int) -> RecordedSession:
    """A whole session as plain values (for replay and export)."""
    info = session_info(con, session_id)
    connections: dict[int, RecordedConnection] = {}
    for row in con.execute(
            "SELECT conn_id, path, query, epoch_us(opened_at), request_headers, subprotocol, status, "
            "epoch_us(closed_at), close_code, close_reason, closed_by, response_headers FROM connections "
            # in the order they opened (with workers, ids are not: each worker numbers its own)
            "WHERE session_id = ? ORDER BY opened_at, conn_id", [info.session_id]).fetchall():
        conn_id, path, query, opened, headers, subprotocol, status, closed, code, reason, closed_by, response = row
        connections[conn_id] = RecordedConnection(conn_id, path or "/", query or "", opened,
                                                  msgspec.json.decode(headers) if headers else {}, subprotocol,
                                                  status, closed, code, reason, closed_by,
                                                  response_headers=msgspec.json.decode(response) if response else {})
    result = con.execute(
        "SELECT f.conn_id, f.seq, epoch_us(f.ts), f.sender, f.kind, f.text, f.data, f.close_code FROM frames f "
        "JOIN connections c USING (conn_id) WHERE c.session_id = ? ORDER BY f.conn_id, f.seq", [info.session_id])
    while rows := result.fetchmany(10_000):
        for conn_id, seq, ts, sender, kind, text, data, close_code in rows:
            connections[conn_id].frames.append(RecordedFrame(conn_id, seq, ts, sender, kind, text, data, close_code))
    return RecordedSession(info.session_id, info.label, list(connections.values()))
