"""What each part of the web view shows, asked of the recording as SQL and answered as JSON-ready
values: the session's connections, its newest frames, its charts, one connection's frames a page at
a time (with their pairs, findings and injections), one frame whole, a sequence diagram.

Every query pages or aggregates inside DuckDB, so a recording of millions of frames costs the
browser what it shows, never the table; and every query selects plain numbers and text, which read
the same from a file and from the live recorder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from wsproxy.core.profile import RULES_BY_CODE
from wsproxy.inspect.diagram import build
from wsproxy.inspect.sequence_svg import sequence_svg
from wsproxy.inspect.timeline import TimelineRow
from wsproxy.store.files import StoreError
from wsproxy.store.schema import USER_NAME_SQL
from wsproxy.ui.filters import TYPE_SQL, FrameFilter
from wsproxy.ui.reader import Reader

PAGE_MAX = 500  # frames in one page
PREVIEW = 240  # characters of a message in the list (the rest on demand)
RATE_BUCKETS = 120  # points of the messages-per-second chart

# What changes as a recording grows; the live socket sends it when it does.
VERSION_SQL = """SELECT (SELECT count(*) FROM frames), (SELECT count(*) FROM violations),
       (SELECT count(*) FROM connections), (SELECT count(closed_at) FROM connections),
       (SELECT count(*) FROM sessions), (SELECT count(ended_at) FROM sessions)"""

CONNECTIONS_SQL = f"""
SELECT c.conn_id, c.path, c.query, {USER_NAME_SQL} AS user_name, c.status, epoch_us(c.opened_at) AS opened_us,
       epoch_us(c.closed_at) AS closed_us, c.close_code, c.close_reason, c.closed_by, c.error,
       coalesce(f.sent, 0) AS sent, coalesce(f.received, 0) AS received,
       coalesce(v.error, 0) AS errors, coalesce(v.warning, 0) AS warnings, coalesce(v.info, 0) AS infos,
       coalesce(i.injected, 0) AS injected
FROM connections c
LEFT JOIN (SELECT conn_id, count(*) FILTER (WHERE sender = 'client') AS sent,
                  count(*) FILTER (WHERE sender = 'server') AS received
           FROM frames WHERE kind IN ('text', 'binary') AND conn_id IN (SELECT conn_id FROM connections WHERE session_id = ?)
           GROUP BY conn_id) f USING (conn_id)
LEFT JOIN (SELECT conn_id, count(*) FILTER (WHERE severity = 'error') AS error,
                  count(*) FILTER (WHERE severity = 'warning') AS warning,
                  count(*) FILTER (WHERE severity = 'info') AS info
           FROM violations WHERE session_id = ? GROUP BY conn_id) v USING (conn_id)
LEFT JOIN (SELECT conn_id, count(*) AS injected FROM injections WHERE session_id = ? GROUP BY conn_id) i USING (conn_id)
WHERE c.session_id = ? {{where}}
ORDER BY c.conn_id
"""

FRAME_COLUMNS = f"""f.conn_id, f.seq, epoch_us(f.ts) AS ts_us, f.sender, f.kind, {TYPE_SQL} AS type, f.msg_id,
       coalesce(f.payload_type, f.event_type) AS name, f.event_id, f.size,
       CASE WHEN f.payload IS NOT NULL THEN left(f.payload::VARCHAR, {PREVIEW})
            WHEN f.kind IN ('text', 'close') THEN left(f.text, {PREVIEW}) END AS preview, f.close_code, f.parse_error"""
FRAME_FIELDS = ("conn_id", "seq", "ts_us", "sender", "kind", "type", "msg_id", "name", "event_id", "size",
                "preview", "close_code", "parse_error")


@dataclass(frozen=True)
class Bounds:
    offset: int = 0
    limit: int = 100


async def version(reader: Reader) -> list[int]:
    return list((await reader.query(VERSION_SQL)).rows[0])


async def session_id(reader: Reader, asked: int | None) -> int:
    """The session asked for (it must exist), or the newest."""
    rows = (await reader.query("SELECT session_id FROM sessions WHERE ? IS NULL OR session_id = ? "
                               "ORDER BY session_id DESC LIMIT 1", [asked, asked])).rows
    if not rows:
        raise StoreError(f"session {asked} is not in this recording" if asked is not None
                         else "the recording holds no session yet")
    return rows[0][0]


async def summary(reader: Reader, session: int) -> dict[str, Any]:
    """The landing page's header and connections table."""
    sessions = (await reader.query("SELECT session_id, label, epoch_us(started_at), epoch_us(ended_at), upstream "
                                   "FROM sessions ORDER BY session_id")).rows
    return {"session": session,
            "sessions": [dict(zip(("id", "label", "started_us", "ended_us", "upstream"), row, strict=True)) for row in sessions],
            "connections": await connections(reader, session),
            "version": await version(reader)}


async def connections(reader: Reader, session: int, conn_id: int | None = None) -> list[dict[str, Any]]:
    where, params = ("AND c.conn_id = ?", [conn_id]) if conn_id is not None else ("", [])
    result = await reader.query(CONNECTIONS_SQL.format(where=where), [session] * 4 + params)
    return result.records()


async def connection(reader: Reader, conn_id: int) -> dict[str, Any]:
    """A connection's header: who, where, how it ended, its counts; its headers; what can be filtered."""
    rows = (await reader.query("SELECT session_id, request_headers::VARCHAR, response_headers::VARCHAR, subprotocol "
                               "FROM connections WHERE conn_id = ?", [conn_id])).rows
    if not rows:
        raise StoreError(f"connection {conn_id} is not in this recording")
    session, request_headers, response_headers, subprotocol = rows[0]
    names = await reader.query("SELECT DISTINCT coalesce(payload_type, event_type) FROM frames "
                               "WHERE conn_id = ? AND coalesce(payload_type, event_type) IS NOT NULL ORDER BY 1",
                               [conn_id])
    codes = await reader.query("SELECT DISTINCT code FROM violations WHERE conn_id = ? ORDER BY 1", [conn_id])
    loose = await reader.query("SELECT code, severity, message FROM violations WHERE conn_id = ? AND seq IS NULL "
                               "ORDER BY code", [conn_id])
    return {**(await connections(reader, session, conn_id))[0], "session": session,
            "request_headers": header_pairs(request_headers), "response_headers": header_pairs(response_headers),
            "subprotocol": subprotocol, "names": [row[0] for row in names.rows],
            "finding_codes": [row[0] for row in codes.rows],
            "findings": [finding_json(*row) for row in loose.rows]}


async def timeline(reader: Reader, session: int, limit: int = 50) -> list[dict[str, Any]]:
    """The session's newest frames, newest first."""
    # The newest frames of the session are among the newest ``limit`` of each connection (seq
    # follows time within one): asking so reads a few rows per connection, not the whole table.
    limit = min(limit, PAGE_MAX)
    result = await reader.query(f"""
        WITH last AS (SELECT conn_id, max(seq) AS top FROM frames
                      WHERE conn_id IN (SELECT conn_id FROM connections WHERE session_id = ?) GROUP BY conn_id)
        SELECT {FRAME_COLUMNS}, {USER_NAME_SQL} AS user_name
        FROM frames f JOIN last l ON f.conn_id = l.conn_id AND f.seq > l.top - ? JOIN connections c ON c.conn_id = f.conn_id
        ORDER BY f.ts DESC, f.conn_id DESC, f.seq DESC LIMIT ?""", [session, limit, limit])
    return await annotate(reader, [dict(zip((*FRAME_FIELDS, "user_name"), row, strict=True)) for row in result.rows])


async def frames(reader: Reader, conn_id: int, where: FrameFilter, bounds: Bounds) -> dict[str, Any]:
    """One page of a connection's frames in order, and how many frames the filter lets through."""
    clause, params = where.sql()
    total = (await reader.query(f"SELECT count(*) FROM frames f WHERE f.conn_id = ?{clause}", [conn_id, *params])).rows[0][0]
    limit = max(0, min(bounds.limit, PAGE_MAX))
    result = await reader.query(f"SELECT {FRAME_COLUMNS} FROM frames f WHERE f.conn_id = ?{clause} "
                                "ORDER BY f.seq LIMIT ? OFFSET ?", [conn_id, *params, limit, max(0, bounds.offset)])
    rows = await annotate(reader, [dict(zip(FRAME_FIELDS, row, strict=True)) for row in result.rows])
    return {"total": total, "offset": bounds.offset, "rows": rows}


async def position(reader: Reader, conn_id: int, where: FrameFilter, seq: int) -> int:
    """Where frame ``seq`` (or the first after it) is in the filtered list: for jumping to it."""
    clause, params = where.sql()
    return (await reader.query(f"SELECT count(*) FROM frames f WHERE f.conn_id = ?{clause} AND f.seq < ?",
                               [conn_id, *params, seq])).rows[0][0]


async def frame(reader: Reader, conn_id: int, seq: int) -> dict[str, Any]:
    """One frame whole: its text (and pretty JSON when it is JSON), or its bytes as base64."""
    result = await reader.query(f"SELECT {FRAME_COLUMNS}, f.text, "
                                "CASE WHEN f.data IS NOT NULL THEN to_base64(f.data) END FROM frames f "
                                "WHERE f.conn_id = ? AND f.seq = ?", [conn_id, seq])
    if not result.rows:
        raise StoreError(f"connection {conn_id} has no frame {seq}")
    *fields, text, data = result.rows[0]
    row = (await annotate(reader, [dict(zip(FRAME_FIELDS, fields, strict=True))]))[0]
    return {**row, "text": text, "data_base64": data, "pretty": pretty_json(text)}


def pretty_json(text: str | None) -> str | None:
    """JSON indented, numbers exactly as sent (msgspec reformats the text; nothing is re-encoded)."""
    if text is None or not text.lstrip().startswith(("{", "[")):
        return None
    try:
        return msgspec.json.format(text, indent=2)
    except msgspec.DecodeError:
        return None


async def annotate(reader: Reader, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each frame with what it pairs with (and the latency), its findings and what --inject did to it."""
    if not rows:
        return rows
    by_conn: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_conn.setdefault(row["conn_id"], []).append(row)
    pairs: dict[tuple[int, int], dict[str, Any]] = {}
    asked: list[str] = []  # per connection: its request ids on show
    asked_params: list[Any] = []
    ranges: list[str] = []  # per connection: the seqs on show
    range_params: list[Any] = []
    for conn, own in by_conn.items():
        ids = sorted({r["msg_id"] for r in own if r["type"] in ("request", "response") and r["msg_id"] is not None})
        if ids:
            asked.append(f"(conn_id = ? AND request_id IN ({_marks(ids)}))")
            asked_params += [conn, *ids]
        ranges.append("(conn_id = ? AND seq BETWEEN ? AND ?)")
        range_params += [conn, min(r["seq"] for r in own), max(r["seq"] for r in own)]
    if asked:
        result = await reader.query("SELECT conn_id, request_seq, response_seq, latency_ms FROM exchanges WHERE "
                                    + " OR ".join(asked), asked_params)
        for conn, request_seq, response_seq, latency in result.rows:
            pairs[(conn, request_seq)] = {"seq": response_seq, "latency_ms": latency}
            if response_seq is not None:
                pairs[(conn, response_seq)] = {"seq": request_seq, "latency_ms": latency}
    in_range = " OR ".join(ranges)
    findings = await reader.query(f"SELECT conn_id, seq, code, severity, message FROM violations WHERE {in_range} "
                                  "ORDER BY conn_id, seq, code", range_params)
    # source, original and sent came with schema 7: read through to_json, older recordings answer NULL
    injections = await reader.query("SELECT conn_id, seq, action, rule, detail, to_json(i)->>'source', "
                                    "to_json(i)->>'original', to_json(i)->>'sent' FROM injections i "
                                    f"WHERE {in_range} ORDER BY conn_id, seq", range_params)
    by_frame: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for conn, seq, *finding in findings.rows:
        by_frame.setdefault((conn, seq), []).append(finding_json(*finding))
    injected: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for conn, seq, action, rule, detail, source, original, sent in injections.rows:
        injected.setdefault((conn, seq), []).append({"action": action, "rule": rule, "detail": detail,
                                                     "source": source or "inject", "original": original,
                                                     "sent": sent})
    for row in rows:
        key = (row["conn_id"], row["seq"])
        row["pair"] = pairs.get(key) if row["type"] in ("request", "response") else None
        row["findings"] = by_frame.get(key, [])
        row["injected"] = injected.get(key, [])
    return rows


async def charts(reader: Reader, session: int) -> dict[str, Any]:
    """Messages per second by direction, response latency per payloadType, findings per rule."""
    in_session = "f.conn_id IN (SELECT conn_id FROM connections WHERE session_id = ?) AND f.kind IN ('text', 'binary')"
    low, high = (await reader.query(f"SELECT min(epoch_us(f.ts)), max(epoch_us(f.ts)) FROM frames f WHERE {in_session}",
                                    [session])).rows[0]
    rate: dict[str, Any] = {"start_us": low, "bucket_s": 1, "client": [], "server": []}
    if low is not None:
        bucket_us = rate_bucket_us(high - low)
        count = (high - low) // bucket_us + 1
        rate.update(bucket_s=bucket_us / 1e6, client=[0] * count, server=[0] * count)
        result = await reader.query(f"SELECT (epoch_us(f.ts) - ?) // ? AS bucket, f.sender, count(*) FROM frames f "
                                    f"WHERE {in_session} GROUP BY ALL", [low, bucket_us, session])
        for bucket, sender, n in result.rows:
            rate[sender][bucket] = n * 1e6 / bucket_us
    latency = await reader.query(
        "SELECT payload_type, count(*) AS requests, count(latency_ms) AS answered, "
        "quantile_cont(latency_ms, 0.5) AS p50, quantile_cont(latency_ms, 0.9) AS p90, "
        "quantile_cont(latency_ms, 0.99) AS p99, max(latency_ms) AS max FROM exchanges "
        "WHERE session_id = ? GROUP BY payload_type ORDER BY requests DESC, payload_type", [session])
    rules = await reader.query("SELECT code, severity, count(*) AS count FROM violations WHERE session_id = ? "
                               "GROUP BY ALL ORDER BY count DESC, code", [session])
    return {"rate": rate, "latency": latency.records(),
            "rules": [{**row, "when": _when(row["code"])} for row in rules.records()]}


async def diagram_svg(reader: Reader, session: int, conns: list[int], after_us: int, limit: int) -> str:
    """The sequence diagram of some connections (all of the session's when none are given), from a time on."""
    chosen = f"AND f.conn_id IN ({_marks(conns)})" if conns else ""
    # a label shows a close frame's reason, never a message's text: a page of 10 MB messages costs labels only
    result = await reader.query(f"SELECT {FRAME_COLUMNS}, {USER_NAME_SQL} AS user_name, "
                                f"CASE WHEN f.kind = 'close' THEN left(f.text, {PREVIEW}) END AS text FROM frames f "
                                f"JOIN connections c USING (conn_id) WHERE c.session_id = ? {chosen} "
                                "AND f.kind IN ('text', 'binary', 'close') AND epoch_us(f.ts) >= ? "
                                "ORDER BY f.ts, f.conn_id, f.seq LIMIT ?",
                                [session, *conns, after_us, min(limit, PAGE_MAX) + 1])
    rows = await annotate(reader, [dict(zip((*FRAME_FIELDS, "user_name", "text"), row, strict=True)) for row in result.rows])
    timeline_rows = [TimelineRow(r["conn_id"], r["seq"], r["ts_us"], r["sender"], r["kind"],
                                 r["type"] if r["type"] in ("request", "response", "event") else None, r["msg_id"],
                                 r["name"], r["event_id"], r["text"], r["size"], r["close_code"], r["user_name"],
                                 r["pair"]["latency_ms"] if r["pair"] and r["type"] == "response" else None,
                                 "\n".join(f"{f['severity']} {f['code']}: {f['message']}" for f in r["findings"]) or None,
                                 "\n".join(i["action"] for i in r["injected"]) or None)
                     for r in rows]
    return sequence_svg(build(timeline_rows, min(limit, PAGE_MAX)))


def rate_bucket_us(span_us: int) -> int:
    """The width of the chart's buckets: the first round one that keeps them at most RATE_BUCKETS."""
    for seconds in (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if span_us / (seconds * 1e6) < RATE_BUCKETS:
            return int(seconds * 1e6)
    return -(-span_us // RATE_BUCKETS)


def finding_json(code: str, severity: str, message: str) -> dict[str, Any]:
    return {"code": code, "severity": severity, "message": message, "when": _when(code)}


def _when(code: str) -> str | None:
    rule = RULES_BY_CODE.get(code)
    return rule.when if rule is not None else None


def _marks(values: list[Any]) -> str:
    return ", ".join("?" * len(values))


def header_pairs(text: str | None) -> list[list[str]]:
    """Recorded headers (a JSON object, a repeated name's values as a list; an imported capture may
    hold a list of pairs) as the [name, value] pairs the page lists, in order."""
    found = _json_or_none(text)
    items = found.items() if isinstance(found, dict) else found if isinstance(found, list) else []
    pairs = []
    for item in items:
        if not (isinstance(item, (list, tuple)) and len(item) == 2):
            continue
        name, value = item
        for one in value if isinstance(value, list) else [value]:
            pairs.append([str(name), one if isinstance(one, str) else msgspec.json.encode(one).decode()])
    return pairs


def _json_or_none(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text
