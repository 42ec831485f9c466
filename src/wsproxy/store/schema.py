"""The recording's DuckDB schema: tables, views, the schema version and its migrations.

Table and column names are an interface (users' SQL and later tools depend on them):
add columns freely, never rename one. Bump ``SCHEMA_VERSION`` with a migration when
the layout changes; the rows that fill the tables are ``core.rows``.
"""

from __future__ import annotations

SCHEMA_VERSION = 8
APPLICATION = "wsproxy"

# What each version adds, in order: an older recording opened for writing gets the rest.
# Version 1 is the frames/connections/sessions layout of DDL_V1.
MIGRATIONS: dict[int, str] = {}

DDL_V1 = """
CREATE TABLE IF NOT EXISTS wsproxy_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS sessions (
    session_id INTEGER PRIMARY KEY, label VARCHAR, started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ,
    listen VARCHAR, upstream VARCHAR, wsproxy_version VARCHAR, redacted BOOLEAN);
CREATE TABLE IF NOT EXISTS connections (
    conn_id INTEGER PRIMARY KEY, session_id INTEGER, opened_at TIMESTAMPTZ, closed_at TIMESTAMPTZ,
    path VARCHAR, query VARCHAR, client_addr VARCHAR, subprotocol VARCHAR,
    request_headers JSON, response_headers JSON, status INTEGER,
    close_code INTEGER, close_reason VARCHAR, closed_by VARCHAR, error VARCHAR);
CREATE TABLE IF NOT EXISTS frames (
    conn_id INTEGER, seq INTEGER, ts TIMESTAMPTZ, sender VARCHAR, kind VARCHAR, size BIGINT,
    text VARCHAR, data BLOB, msg_type VARCHAR, msg_id VARCHAR, payload_type VARCHAR,
    event_type VARCHAR, event_id BIGINT, payload JSON, parse_error VARCHAR, close_code INTEGER);
"""

# The checker's findings, and every request paired with its response (n-th request with an id
# pairs with the n-th response with that id on the same connection, as the checker pairs them).
VIOLATIONS_TABLE = """
CREATE {temp} TABLE IF NOT EXISTS violations (
    session_id INTEGER, conn_id INTEGER, seq INTEGER, ts TIMESTAMPTZ, code VARCHAR, severity VARCHAR,
    message VARCHAR, request_id VARCHAR, event_id BIGINT);
"""
EXCHANGES_VIEW = """
CREATE OR REPLACE {temp} VIEW exchanges AS
WITH requests AS (
    SELECT conn_id, msg_id, payload_type, seq, ts,
           row_number() OVER (PARTITION BY conn_id, msg_id ORDER BY seq) AS nth
    FROM frames WHERE msg_type = 'request' AND sender = 'client'),
responses AS (
    SELECT conn_id, msg_id, seq, ts, payload,
           row_number() OVER (PARTITION BY conn_id, msg_id ORDER BY seq) AS nth
    FROM frames WHERE msg_type = 'response' AND sender = 'server')
SELECT c.session_id, q.conn_id, q.msg_id AS request_id, q.payload_type, q.seq AS request_seq,
       r.seq AS response_seq, q.ts AS request_ts, r.ts AS response_ts,
       date_diff('microsecond', q.ts, r.ts) / 1000.0 AS latency_ms,
       json_extract_string(r.payload, '$.error.code') AS error_code
FROM requests q
JOIN connections c USING (conn_id)
LEFT JOIN responses r ON r.conn_id = q.conn_id AND r.msg_id = q.msg_id AND r.nth = q.nth;
"""
MIGRATIONS[2] = VIOLATIONS_TABLE.format(temp="") + EXCHANGES_VIEW.format(temp="")

# The `user` query parameter of a connection (`c`): how the views and the timeline name who is talking.
USER_NAME_SQL = "regexp_extract(c.query, '(^|&)user=([^&]*)', 2)"

# Views for humans (docs/sql.md): data messages with their connection, and events with their
# stream order. Readers also create them as TEMP views, so older recordings get them too.
VIEWS = """
CREATE OR REPLACE {temp} VIEW messages AS
SELECT c.session_id, f.conn_id, f.seq, f.ts, f.sender, f.kind, c.path, c.query,
       {user_name} AS user_name,
       f.msg_type, f.msg_id, f.payload_type, f.event_type, f.event_id,
       coalesce(f.payload_type, f.event_type) AS type_name, f.size,
       CASE WHEN f.kind = 'text' THEN f.text ELSE 'base64:' || to_base64(f.data) END AS text,
       f.payload, f.parse_error
FROM frames f JOIN connections c USING (conn_id)
WHERE f.kind IN ('text', 'binary');
CREATE OR REPLACE {temp} VIEW events AS
WITH ev AS (
    SELECT f.*, lag(f.event_id) OVER w AS lag_id, lag(f.seq) OVER w AS lag_seq,
           (SELECT max(s.seq) FROM frames s WHERE s.conn_id = f.conn_id AND s.seq < f.seq
             AND s.msg_type = 'request' AND s.payload_type = 'subscribe' AND s.sender = 'client') AS subscribe_seq
    FROM frames f WHERE f.msg_type = 'event'
    WINDOW w AS (PARTITION BY f.conn_id, f.event_id IS NOT NULL ORDER BY f.seq)),
baseline AS (
    -- the previous id: the previous event with an id, or the lastEventId of a subscribe in between
    SELECT ev.*, CASE WHEN ev.subscribe_seq > coalesce(ev.lag_seq, -1)
                      THEN (SELECT TRY_CAST(s.payload->>'$.lastEventId' AS BIGINT) FROM frames s
                            WHERE s.conn_id = ev.conn_id AND s.seq = ev.subscribe_seq)
                      ELSE ev.lag_id END AS previous_id
    FROM ev)
SELECT c.session_id, b.conn_id, b.seq, b.ts, b.sender, b.event_type, b.event_id, b.event_id IS NOT NULL AS has_id,
       CASE WHEN b.event_id IS NOT NULL THEN b.previous_id END AS previous_event_id,
       CASE WHEN b.event_id IS NOT NULL THEN b.event_id - b.previous_id - 1 END AS ids_skipped,
       {user_name} AS user_name, b.payload
FROM baseline b JOIN connections c USING (conn_id);
"""
MIGRATIONS[3] = VIEWS.format(temp="", user_name=USER_NAME_SQL)

# Version 4 stores a message once. Until 3 each frame kept its text and, again, its payload
# JSON: two copies of nearly every byte, which halved how fast large messages could be
# recorded. Now the stored rows (``frame_store``) keep where the payload lies in the text,
# and ``frames`` is a view with the same columns as before; rows from older versions keep
# their stored payload and read the same.
FRAMES_VIEW = """
CREATE OR REPLACE VIEW frames AS
SELECT conn_id, seq, ts, sender, kind, size, text, data, msg_type, msg_id, payload_type, event_type, event_id,
       CASE WHEN payload_at IS NULL THEN payload
            ELSE substr(text, payload_at, payload_len)::JSON END AS payload,
       parse_error, close_code
FROM frame_store;
"""
MIGRATIONS[4] = """
ALTER TABLE frames RENAME TO frame_store;
ALTER TABLE frame_store ADD COLUMN payload_at INTEGER;
ALTER TABLE frame_store ADD COLUMN payload_len INTEGER;
""" + FRAMES_VIEW

# Version 5: fault injection (`--inject`). Each frame says how often it was delivered when a rule
# changed that (``delivered``: 0 dropped, 2 duplicated; NULL, read as 1: relayed as it came), and
# ``injections`` says what each rule did.
FRAMES_VIEW_V5 = FRAMES_VIEW.replace("parse_error, close_code", "parse_error, close_code, coalesce(delivered, 1) AS delivered")
INJECTIONS_TABLE = """
CREATE TABLE IF NOT EXISTS injections (
    session_id INTEGER, conn_id INTEGER, seq INTEGER, ts TIMESTAMPTZ, sender VARCHAR, action VARCHAR,
    rule VARCHAR, detail VARCHAR);
"""
MIGRATIONS[5] = ("ALTER TABLE frame_store ADD COLUMN delivered INTEGER;\n"
                 "ALTER TABLE violations ADD COLUMN IF NOT EXISTS caused_by_injection BOOLEAN DEFAULT false;\n"
                 + INJECTIONS_TABLE + FRAMES_VIEW_V5)

# Version 6: frames of 8 KiB or more may be stored as Parquet files beside the recording
# (``store.parts``): ``frame_parts`` lists them and ``frames`` reads them with ``frame_store``.
FRAME_PARTS_TABLE = """
CREATE TABLE IF NOT EXISTS frame_parts (part VARCHAR PRIMARY KEY, session_id INTEGER, rows BIGINT, bytes BIGINT);
"""
MIGRATIONS[6] = FRAME_PARTS_TABLE

# Version 7: hands on the wire (held, edited, dropped, composed and resent messages) are injections
# too; each says who acted and, where a message changed, what it was and what was sent.
MIGRATIONS[7] = """
ALTER TABLE injections ADD COLUMN IF NOT EXISTS source VARCHAR;
ALTER TABLE injections ADD COLUMN IF NOT EXISTS original VARCHAR;
ALTER TABLE injections ADD COLUMN IF NOT EXISTS sent VARCHAR;
"""

# Version 8: a finding against an AsyncAPI document (`--spec`, codes spec-*) says where in the
# envelope it failed, as a JSON pointer (RFC 6901).
MIGRATIONS[8] = "ALTER TABLE violations ADD COLUMN IF NOT EXISTS pointer VARCHAR;\n"


def sql_literal(text: str) -> str:
    """``text`` as an SQL string literal (for statements that take no parameters: views, SET)."""
    return "'" + text.replace("'", "''") + "'"


def frames_view(parts: list[str]) -> str:
    """The ``frames`` view over ``frame_store`` and the Parquet ``parts`` (names relative to the
    recording's folder, which readers set as DuckDB's ``file_search_path``)."""
    if not parts:
        return FRAMES_VIEW_V5
    names = ", ".join(map(sql_literal, parts))
    return FRAMES_VIEW_V5.replace(
        "FROM frame_store;",
        f"FROM (SELECT * FROM frame_store UNION ALL BY NAME SELECT * FROM read_parquet([{names}]));")


DDL = DDL_V1 + "".join(MIGRATIONS[v] for v in sorted(MIGRATIONS))
