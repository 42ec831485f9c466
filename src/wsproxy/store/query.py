"""SQL on a recording, from the file, or from the recorder writing it right now: the read side of
``wsproxy query`` and of every inspecting command. DuckDB lets no other process open a file being
written, so then the question goes to the recorder's live endpoint (``record.live_query``), found
through the sidecar file next to the recording. Either way the SQL runs in a ``store.sql.UserSql``."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from wsproxy.store.files import RecordingLocked, sidecar_path
from wsproxy.store.recording import open_recording
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


@dataclass(frozen=True)
class LiveAsk:
    """A question for the recorder writing ``db``: where to send it, and what to say when it goes wrong."""
    db: Path
    url: str
    body: bytes
    headers: dict[str, str]
    wait: float  # seconds to wait for the answer: the SQL's time limit and some grace

    def gone(self) -> RecordingLocked:
        return RecordingLocked(f"{self.db} is locked, and the recorder that wrote {sidecar_path(self.db).name} does "
                               f"not answer (did it crash? then remove {sidecar_path(self.db)})")

    def too_slow(self) -> QueryError:
        return QueryError(f"the recorder writing {self.db} did not answer within {self.wait:g} s")


def live_ask(db: Path, sql: str, params: list[Any] | None, timeout: float) -> LiveAsk:
    """The question, from the sidecar file the recorder left next to ``db``."""
    try:
        info = msgspec.json.decode(sidecar_path(db).read_bytes())
        port, token = int(info["port"]), str(info["token"])
    except (OSError, msgspec.DecodeError, KeyError, TypeError, ValueError):
        raise RecordingLocked(f"{db} is locked by another program and no wsproxy recorder serves queries for it "
                              f"(a `wsproxy ui` or another DuckDB client holding it?)") from None
    return LiveAsk(db, f"http://127.0.0.1:{port}/query",
                   msgspec.json.encode({"sql": sql, "params": params or [], "timeout": timeout}),
                   {"X-Wsproxy-Token": token, "Content-Type": "application/json"}, timeout + ANSWER_GRACE_SECONDS)


def live_answer(status: int, reason: str, body: bytes) -> QueryResult:
    """The recorder's answer as rows, or its refusal as a ``QueryError``."""
    try:
        answer = msgspec.json.decode(body)
    except msgspec.DecodeError:
        answer = None
    if status != 200:
        message = answer.get("error") if isinstance(answer, dict) else None
        raise QueryError(str(message or f"the recorder answered {status} {reason}"))
    if not isinstance(answer, dict):
        raise QueryError("the recorder's answer is not JSON")
    return QueryResult(answer["columns"], answer["types"], [tuple(row) for row in answer["rows"]],
                       bool(answer.get("truncated")))


def query_live(db: Path, sql: str, params: list[Any] | None = None, timeout: float = SQL_TIMEOUT) -> QueryResult:
    """Ask the recorder that is writing ``db`` (the file itself is locked); blocking."""
    ask = live_ask(db, sql, params, timeout)
    request = urllib.request.Request(ask.url, method="POST", data=ask.body, headers=ask.headers)
    try:
        with urllib.request.urlopen(request, timeout=ask.wait) as response:
            return live_answer(response.status, response.reason, response.read())
    except urllib.error.HTTPError as exc:
        return live_answer(exc.code, str(exc.reason), exc.read())
    except TimeoutError:
        raise ask.too_slow() from None
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        raise ask.gone() from None


async def query_live_async(db: Path, sql: str, params: list[Any] | None = None,
                           timeout: float = SQL_TIMEOUT) -> QueryResult:
    """``query_live`` for an event loop: cancelling the awaiting task hangs up on the recorder, which
    then interrupts the statement (the web view's page went away)."""
    import aiohttp
    ask = live_ask(db, sql, params, timeout)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ask.wait)) as http, \
                http.post(ask.url, data=ask.body, headers=ask.headers) as response:
            return live_answer(response.status, response.reason or "", await response.read())
    except TimeoutError:
        raise ask.too_slow() from None
    except (aiohttp.ClientError, OSError):
        raise ask.gone() from None
