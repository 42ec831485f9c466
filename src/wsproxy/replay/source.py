"""Where a replay's traffic comes from (a DuckDB recording or a JSONL export), and where its
divergences go."""

from __future__ import annotations

from pathlib import Path

import duckdb
import msgspec

from wsproxy.core.errors import first_line
from wsproxy.core.recorded import RecordedSession
from wsproxy.core.replay_plan import Divergence
from wsproxy.inspect.jsonl import is_jsonl, session_from_jsonl
from wsproxy.store.files import StoreError
from wsproxy.store.folder import is_folder
from wsproxy.store.read import load_session
from wsproxy.store.recording import open_recording

DIVERGENCES_DDL = """
CREATE TABLE IF NOT EXISTS replay_divergences (
    replay_started_at TIMESTAMPTZ, session_id INTEGER, conn_id INTEGER, ts TIMESTAMPTZ, kind VARCHAR,
    message VARCHAR, expected VARCHAR, got VARCHAR)
"""


def source_kind(path: Path) -> str:
    """"jsonl", "har" or "duckdb", by content, not name (a folder of segments, or a glob of them: "duckdb")."""
    if is_folder(path) or _is_duckdb(path):  # first: a DuckDB file starts with a checksum, whose first byte may well be "{"
        return "duckdb"
    return "jsonl" if is_jsonl(path) else "har" if _is_json(path) else "duckdb"


def load_recording(path: Path, session_id: int | None = None) -> RecordedSession:
    """The session to replay from a DuckDB recording or a JSONL export (by content, not name)."""
    if not path.exists() and not is_folder(path):
        raise StoreError(f"{path} does not exist: give a recording (.duckdb), a JSONL export or a HAR file")
    kind = source_kind(path)
    if kind == "jsonl":
        return session_from_jsonl(path, session_id)
    if kind == "har":  # a HAR capture (Chrome DevTools, mitmproxy, ...)
        from wsproxy.inspect.har import from_har
        try:
            return from_har(msgspec.json.decode(path.read_bytes()), path.stem).session
        except (msgspec.DecodeError, ValueError) as exc:
            raise StoreError(f"{path} is neither a recording, a JSONL export nor a HAR file: {exc}") from None
    con = open_recording(path)
    try:
        return load_session(con, session_id if session_id is not None else
                            con.execute("SELECT max(session_id) FROM sessions").fetchall()[0][0])
    finally:
        con.close()


def _is_duckdb(path: Path) -> bool:
    """DuckDB's magic bytes: "DUCK" after the header block's 8-byte checksum."""
    try:
        with path.open("rb") as handle:
            return handle.read(12)[8:12] == b"DUCK"
    except OSError:
        return False


def _is_json(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(64).lstrip().startswith(b"{")


def save_divergences(recording: Path, session_id: int, started_us: int, divergences: list[Divergence],
                     report: Path | None) -> str:
    """Keep the divergences: in ``report`` (JSONL) when given, else in the recording's
    ``replay_divergences`` table (DuckDB recordings only). Returns where they went."""
    rows = [(started_us, session_id, d.conn_id, d.ts_us, d.kind, d.message, d.expected, d.got) for d in divergences]
    if report is not None:
        with report.open("a", encoding="utf-8") as out:
            for row in rows:
                out.write(msgspec.json.encode(dict(zip(
                    ("replay_started_us", "session_id", "conn_id", "ts_us", "kind", "message", "expected", "got"),
                    row, strict=True))).decode() + "\n")
        return str(report)
    if source_kind(recording) != "duckdb":
        return "nowhere (give --report FILE to keep them for a JSONL or HAR recording)"
    try:
        con = duckdb.connect(str(recording))
    except duckdb.Error as exc:
        raise StoreError(f"cannot store divergences in {recording}: {first_line(exc)}; "
                         f"use --report FILE") from None
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(DIVERGENCES_DDL)
        if rows:
            con.executemany("INSERT INTO replay_divergences VALUES (make_timestamptz(?), ?, ?, make_timestamptz(?),"
                            " ?, ?, ?, ?)", rows)
        con.execute("COMMIT")
    finally:
        con.close()
    return f"{recording} (table replay_divergences)"
