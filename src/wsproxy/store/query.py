"""SQL on a recording, from the file, or from the recorder writing it right now: the read side of
``wsproxy query`` and of every inspecting command. DuckDB lets no other process open a file being
written, so then the question goes to the recorder's live endpoint (``record.live_query``), found
through the sidecar file next to the recording. Either way the SQL runs in a ``store.sql.UserSql``."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import msgspec

from wsproxy.store.files import RecordingLocked, open_recording, sidecar_path
from wsproxy.store.sql import SQL_TIMEOUT, QueryError, QueryResult, UserSql

MAX_LIVE_ROWS = 100_000  # a live query answers at most this many rows (say so when cut)
ANSWER_GRACE_SECONDS = 5.0  # how much longer than the SQL's time limit to wait for the recorder's answer


def run_query(path: Path, sql: str, params: list[Any] | None = None, timeout: float = SQL_TIMEOUT) -> QueryResult:
    """SQL on a recording: directly from the file, or from the recorder writing it right now."""
    try:
        con = open_recording(path)
    except RecordingLocked:
        return query_live(path, sql, params, timeout)
    runner = UserSql(con, timeout=timeout, owned=True)
    try:
        return runner.run(sql, params)
    finally:
        runner.close()


def query_live(db: Path, sql: str, params: list[Any] | None = None, timeout: float = SQL_TIMEOUT) -> QueryResult:
    """Ask the recorder that is writing ``db`` (the file itself is locked)."""
    path = sidecar_path(db)
    try:
        info = msgspec.json.decode(path.read_bytes())
        port, token = int(info["port"]), str(info["token"])
    except (OSError, msgspec.DecodeError, KeyError, TypeError, ValueError):
        raise RecordingLocked(f"{db} is locked by another program and no wsproxy recorder serves queries for it "
                              f"(a `wsproxy ui` or another DuckDB client holding it?)") from None
    request = urllib.request.Request(f"http://127.0.0.1:{port}/query", method="POST",
                                     data=msgspec.json.encode({"sql": sql, "params": params or [], "timeout": timeout}),
                                     headers={"X-Wsproxy-Token": token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout + ANSWER_GRACE_SECONDS) as response:
            answer = msgspec.json.decode(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = str(msgspec.json.decode(exc.read()).get("error", exc))
        except (msgspec.DecodeError, AttributeError, OSError):
            message = f"the recorder answered {exc.code} {exc.reason}"
        raise QueryError(message) from None
    except TimeoutError:
        raise QueryError(f"the recorder writing {db} did not answer within {timeout + ANSWER_GRACE_SECONDS:g} s") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        raise RecordingLocked(f"{db} is locked, and the recorder that wrote {path.name} does not answer "
                              f"(did it crash? then remove {path})") from None
    return QueryResult(answer["columns"], answer["types"], [tuple(row) for row in answer["rows"]],
                       bool(answer.get("truncated")))
