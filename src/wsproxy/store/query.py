"""SQL on a recording, from the file, or from the recorder writing it right now: the read side of
``wsproxy query`` and of every inspecting command. DuckDB lets no other process open a file being
written, so then the question goes to the recorder's live endpoint (``record.live_query``), found
through the sidecar file next to the recording."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import msgspec

from wsproxy.store.files import StoreError, open_recording
from wsproxy.store.sql import QueryError, QueryResult, execute

MAX_LIVE_ROWS = 100_000  # a live query answers at most this many rows (say so when cut)


def run_query(path: Path, sql: str, params: list[Any] | None = None) -> QueryResult:
    """SQL on a recording: directly from the file, or from the recorder writing it right now."""
    try:
        con = open_recording(path)
    except StoreError as exc:
        if "is being written" not in str(exc):
            raise
        return query_live(path, sql, params)
    try:
        return execute(con, sql, params)
    finally:
        con.close()


def sidecar_path(db: Path) -> Path:
    return db.with_name(db.name + ".wsproxy-live")


def query_live(db: Path, sql: str, params: list[Any] | None = None) -> QueryResult:
    """Ask the recorder that is writing ``db`` (the file itself is locked)."""
    path = sidecar_path(db)
    try:
        info = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        raise StoreError(f"{db} is locked by another program and no wsproxy recorder serves queries for it") from None
    request = urllib.request.Request(f"http://127.0.0.1:{info['port']}/query", method="POST",
                                     data=msgspec.json.encode({"sql": sql, "params": params or []}),
                                     headers={"X-Wsproxy-Token": info["token"], "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = msgspec.json.decode(response.read())
    except urllib.error.HTTPError as exc:
        message = msgspec.json.decode(exc.read()).get("error", str(exc))
        raise QueryError(message) from None
    except (urllib.error.URLError, OSError):
        raise StoreError(f"{db} is locked, and the recorder that wrote {path.name} does not answer "
                         f"(did it crash? then remove {path})") from None
    return QueryResult(answer["columns"], answer["types"], [tuple(row) for row in answer["rows"]])
