"""``wsproxy export``: one session as JSONL, HAR or Parquet files."""

from __future__ import annotations

from pathlib import Path

import msgspec

from wsproxy.inspect.har import to_har
from wsproxy.inspect.jsonl import write_jsonl
from wsproxy.store.files import StoreError, open_recording
from wsproxy.store.read import load_session, session_info

PARQUET_TABLES = {
    "sessions": "SELECT * FROM sessions WHERE session_id = $s",
    "connections": "SELECT * FROM connections WHERE session_id = $s",
    "frames": "SELECT f.* FROM frames f JOIN connections c USING (conn_id) WHERE c.session_id = $s ORDER BY f.conn_id, f.seq",
    "violations": "SELECT * FROM violations WHERE session_id = $s",
}


def export_session(recording: Path, output: Path, fmt: str, session_id: int | None) -> str:
    """Write the session; returns a one-line summary."""
    con = open_recording(recording)
    try:
        info = session_info(con, session_id)
        if fmt == "jsonl":
            try:
                with output.open("w", encoding="utf-8") as out:
                    frames = write_jsonl(con, info.session_id, out)
            except StoreError:
                output.unlink(missing_ok=True)
                raise
            return f"wrote {frames:,} frames to {output}"
        if fmt == "har":
            session = load_session(con, info.session_id)
            document = to_har(session, info.upstream)
            output.write_bytes(msgspec.json.format(msgspec.json.encode(document), indent=1))
            messages = sum(len(e["_webSocketMessages"]) for e in document["log"]["entries"])
            return (f"wrote {len(document['log']['entries'])} WebSocket entries, {messages:,} messages to {output} "
                    f"(HAR carries data messages only)")
        output.mkdir(parents=True, exist_ok=True)
        for table, sql in PARQUET_TABLES.items():
            target = output / f"{table}.parquet"
            con.execute(f"COPY ({sql.replace('$s', str(int(info.session_id)))}) TO '{_quote(target)}' (FORMAT parquet)")
        return f"wrote {', '.join(f'{t}.parquet' for t in PARQUET_TABLES)} to {output}/"
    finally:
        con.close()


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
