"""``wsproxy export``: one session as JSONL, HAR or Parquet files (or every session as a Parquet dataset)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import msgspec

from wsproxy.inspect.dataset import PartitionKey, write_dataset
from wsproxy.inspect.har import to_har
from wsproxy.inspect.jsonl import write_jsonl
from wsproxy.store.files import StoreError
from wsproxy.store.read import load_session, session_info
from wsproxy.store.recording import open_recording


def export_session(recording: Path, output: Path, fmt: str, session_id: int | None,
                   partition: list[PartitionKey] | None = None) -> str:
    """Write the session (for Parquet with ``partition``: every session, unless one is named); returns a
    one-line summary."""
    con = open_recording(recording)
    try:
        if fmt == "parquet" and partition and session_id is None:
            sessions = [row[0] for row in con.execute("SELECT session_id FROM sessions ORDER BY 1").fetchall()]
            if not sessions:
                raise StoreError(f"{recording} has no sessions to export")
            return _parquet(con, recording, output, sessions, partition)
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
        return _parquet(con, recording, output, [info.session_id], partition or [])
    finally:
        con.close()


def _parquet(con: duckdb.DuckDBPyConnection, recording: Path, output: Path, sessions: list[int],
             partition: list[PartitionKey]) -> str:
    label = f"s{sessions[0]}" if len(sessions) == 1 else f"s{sessions[0]}-s{sessions[-1]}"
    written = write_dataset(con, recording, output, sessions, partition, f"{recording.stem or 'recording'}-{label}")
    rows = ", ".join(f"{table} {count:,}" for table, count in written.tables.items())
    if not partition:
        return f"wrote {', '.join(f'{t}.parquet' for t in written.tables)} to {output}/ ({rows} rows)"
    return (f"wrote {written.files:,} Parquet files partitioned by {','.join(partition)} to {output}/ "
            f"({len(sessions)} session(s); {rows} rows)")
