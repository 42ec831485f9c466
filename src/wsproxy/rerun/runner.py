"""`wsproxy rerun`: play a recorded session's clients against a live server, through a recording
proxy of our own, and compare what comes back (``core.rerun_compare``) step by step as
``core.rerun_plan`` schedules it. This module is the aiohttp shell; it decides nothing itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import msgspec

from wsproxy.clock import now_us
from wsproxy.core.errors import UserError
from wsproxy.core.profile import CHAT_PROFILE, Profile
from wsproxy.core.recorded import RecordedConnection, RecordedSession
from wsproxy.core.rerun_compare import (
    Bindings,
    ConnectionComparison,
    Difference,
    Rules,
    close_difference,
    finding_differences,
    handshake_difference,
)
from wsproxy.core.rerun_plan import Step, Variation, client_text, replay_headers, schedule


class UpstreamUnreachable(UserError):
    """The server to rerun against does not accept connections at all."""


@dataclass
class RerunOptions:
    upstream: str
    db: Path
    label: str | None = None
    wait: float = 5.0  # seconds to wait for the server messages a step waits for
    headers: dict[str, str] = field(default_factory=dict)
    rules: Rules = field(default_factory=Rules)
    copies: int = 1
    vary: list[tuple[str, str]] = field(default_factory=list)
    renames: list[tuple[str, str]] = field(default_factory=list)
    profile: Profile = CHAT_PROFILE
    redact: bool = True
    insecure: bool = False  # a wss:// upstream: do not verify its certificate
    ca_file: str | None = None  # ... or trust this CA


@dataclass
class CopyResult:
    copy: int
    differences: list[Difference] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)  # payloadType -> seconds
    sent: int = 0
    received: int = 0


@dataclass
class RerunResult:
    session_id: int  # the rerun's session in ``db``
    db: Path
    copies: list[CopyResult]
    elapsed: float
    finding_differences: list[Difference] = field(default_factory=list)

    @property
    def differences(self) -> list[Difference]:
        return [d for c in self.copies for d in c.differences] + self.finding_differences

    @property
    def messages(self) -> int:
        return sum(c.sent + c.received for c in self.copies)


async def check_reachable(upstream: str, timeout: float = 5.0) -> None:
    """Fail early, with one line, when nothing listens where the rerun should go."""
    parts = urlsplit(upstream)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), timeout)
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise UpstreamUnreachable(f"cannot reach the upstream {upstream}: {reason}; is the server running?") from None
    writer.close()


class _Live:
    """One live connection of a copy: its socket, what arrived, how it ended."""

    def __init__(self, conn: RecordedConnection, comparison: ConnectionComparison) -> None:
        self.conn, self.comparison = conn, comparison
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.status: int | None = None
        self.error: str | None = None
        self.arrived = asyncio.Condition()
        self.closed_by: str | None = None
        self.close_code: int | None = None
        self.reader: asyncio.Task | None = None
        self.pending: dict[str, tuple[str, float]] = {}  # request id -> (payloadType, sent at)

    async def wait_for(self, before: int | None, deadline: float, closed: bool = False) -> None:
        """Until the server messages recorded before frame ``before`` (None: all) have come
        (``closed``: and the server closed), the connection ended, or ``deadline``."""
        def ready() -> bool:
            return self.closed_by is not None or (not closed and not self.comparison.outstanding(before))
        async with self.arrived:
            try:
                await asyncio.wait_for(self.arrived.wait_for(ready), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                self.comparison.give_up(before)


async def run_rerun(session: RecordedSession, options: RerunOptions,
                    progress: Callable[[int, int], None] | None = None) -> RerunResult:
    """Rerun ``session`` ``options.copies`` times at once against ``options.upstream``, recorded
    into ``options.db`` as a new session. ``progress(steps done, steps in all)`` as it goes."""
    from wsproxy.record.rotation import FolderPlan
    from wsproxy.record.session import RecordOptions, RecordSession

    await check_reachable(options.upstream)
    # a recording folder takes the rerun as one more segment of its own
    folder = FolderPlan() if options.db.is_dir() else None
    proxy = RecordSession(RecordOptions(listen="127.0.0.1:0", upstream=options.upstream, db=options.db, folder=folder,
                                        label=options.label or started_label(None, session, options.upstream),
                                        redact=options.redact, profile=options.profile, insecure=options.insecure,
                                        ca_file=options.ca_file))
    await proxy.start()
    started = time.monotonic()
    steps_total = len(schedule(session)) * options.copies
    done = [0]

    def step_done() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], steps_total)

    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
            copies = await asyncio.gather(*(
                _run_copy(Variation(n, options.vary, options.renames).apply(session), n, options, proxy.url, http,
                          step_done) for n in range(1, options.copies + 1)))
    finally:
        await proxy.stop()
    elapsed = time.monotonic() - started
    return RerunResult(proxy.recorder.session_id, options.db, list(copies), elapsed,
                       _new_findings(session, options, proxy.recorder.session_id))


def _new_findings(session: RecordedSession, options: RerunOptions, rerun_session: int) -> list[Difference]:
    """Findings the rerun has more of than the recording (the live checker's rules on both)."""
    from wsproxy.inspect.check import check_session
    from wsproxy.store.read import load_session
    from wsproxy.store.recording import open_recording

    con = open_recording(options.db)
    try:
        rerun = load_session(con, rerun_session)
    finally:
        con.close()
    return finding_differences(finding_counts(check_session(session, options.profile), options.copies),
                               finding_counts(check_session(rerun, options.profile)))


def finding_counts(findings: list, times: int = 1) -> dict[str, int]:
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.code] = counts.get(finding.code, 0) + times
    return counts


async def _run_copy(session: RecordedSession, copy: int, options: RerunOptions, base_url: str,
                    http: aiohttp.ClientSession, step_done: Callable[[], None]) -> CopyResult:
    bindings = Bindings()
    result = CopyResult(copy)
    lives = {conn.conn_id: _Live(conn, ConnectionComparison(conn, options.rules, bindings))
             for conn in session.connections}
    for step in schedule(session):
        live = lives[step.conn_id]
        deadline = time.monotonic() + options.wait
        if step.action == "open":
            await _open(live, base_url, options, http, result)
        elif live.ws is not None and live.closed_by is None:
            await live.wait_for(step.after, deadline)
            if live.closed_by is None:
                await _act(live, step, options, bindings, result)
        step_done()
    # What is still to come: the recorded server messages (and a server's close) not yet here.
    deadline = time.monotonic() + options.wait
    await asyncio.gather(*(live.wait_for(None, deadline,
                                         closed=live.conn.closed_by == "server")
                           for live in lives.values() if live.ws is not None))
    for live in lives.values():
        if live.ws is not None and live.closed_by is None:
            live.closed_by = "client"
            await live.ws.close()
        if live.reader is not None:
            await live.reader
    for live in lives.values():
        refused = handshake_difference(live.conn, live.status, live.error)
        if refused is not None:
            result.differences.append(refused)
            continue
        result.differences += live.comparison.differences()
        closed = close_difference(live.conn, live.close_code, live.closed_by)
        if closed is not None:
            result.differences.append(closed)
    if options.copies > 1:
        result.differences = [replace(d, copy=copy) for d in result.differences]
    return result


async def _open(live: _Live, base_url: str, options: RerunOptions, http: aiohttp.ClientSession,
                result: CopyResult) -> None:
    conn = live.conn
    url = base_url + (conn.path if conn.path.startswith("/") else "/" + conn.path)
    if conn.query:
        url += "?" + conn.query
    try:
        live.ws = await http.ws_connect(url, headers=replay_headers(conn, options.headers),
                                        protocols=[conn.subprotocol] if conn.subprotocol else (),
                                        autoping=True, heartbeat=None, max_msg_size=0,
                                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=options.wait))
        live.status = 101
    except aiohttp.WSServerHandshakeError as exc:
        live.status, live.error = exc.status, exc.message
        return
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        live.error = str(exc) or type(exc).__name__
        return
    if conn.status != 101:  # recorded as refused: it should have been refused again
        live.closed_by = "client"
        await live.ws.close()
        live.ws = None
        return
    live.reader = asyncio.create_task(_read(live, result), name=f"rerun-read-{conn.conn_id}")


async def _read(live: _Live, result: CopyResult) -> None:
    ws = live.ws
    assert ws is not None  # read once connected
    seq = 0
    async for msg in ws:
        seq += 1
        if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            _latency(live, msg, result)
            async with live.arrived:
                live.comparison.receive("text" if msg.type == aiohttp.WSMsgType.TEXT else "binary", msg.data, seq)
                result.received += 1
                live.arrived.notify_all()
    async with live.arrived:
        if live.closed_by is None:  # the server closed (or vanished: 1006)
            live.closed_by = "server"
            live.close_code = ws.close_code if ws.close_code is not None else 1006
        live.arrived.notify_all()


def _latency(live: _Live, msg: aiohttp.WSMessage, result: CopyResult) -> None:
    if not live.pending or msg.type != aiohttp.WSMsgType.TEXT or '"response"' not in msg.data:
        return
    try:
        request_id = msgspec.json.decode(msg.data).get("id")
    except (msgspec.DecodeError, AttributeError):
        return
    sent = live.pending.pop(request_id, None) if isinstance(request_id, str) else None
    if sent is not None:
        result.latencies.setdefault(sent[0], []).append(time.monotonic() - sent[1])


async def _act(live: _Live, step: Step, options: RerunOptions, bindings: Bindings, result: CopyResult) -> None:
    ws, frame = live.ws, step.frame
    assert ws is not None  # acted on once connected
    try:
        if step.action == "close":
            live.closed_by = "client"
            code = frame.close_code if frame is not None and frame.close_code else 1000
            await ws.close(code=code, message=((frame.text if frame else None) or "").encode()[:123])
            return
        assert frame is not None  # a send step carries its frame
        if frame.kind == "text":
            text = client_text(frame, options.rules, bindings, live.comparison.user, now_us())
            _note_request(live, text)
            await ws.send_str(text)
        else:
            await ws.send_bytes(frame.data or b"")
        result.sent += 1
    except (ConnectionError, RuntimeError, aiohttp.ClientError):
        pass  # the server went away: the reader records how, the comparison what is missing


def _note_request(live: _Live, text: str) -> None:
    if '"request"' not in text:
        return
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return
    if isinstance(value, dict) and value.get("type") == "request" and isinstance(value.get("id"), str):
        live.pending[value["id"]] = (str(value.get("payloadType")), time.monotonic())


def recorded_latencies(session: RecordedSession) -> dict[str, list[float]]:
    """Per payloadType, the recorded seconds from each request to its response."""
    out: dict[str, list[float]] = {}
    for conn in session.connections:
        asked: dict[str, tuple[str, int]] = {}
        for frame in conn.frames:
            if frame.kind != "text" or not frame.text:
                continue
            try:
                value = msgspec.json.decode(frame.text)
            except msgspec.DecodeError:
                continue
            if not isinstance(value, dict) or not isinstance(value.get("id"), str):
                continue
            if frame.sender == "client" and value.get("type") == "request":
                asked[value["id"]] = (str(value.get("payloadType")), frame.ts_us)
            elif frame.sender == "server" and value.get("type") == "response" and value["id"] in asked:
                kind, ts = asked.pop(value["id"])
                out.setdefault(kind, []).append((frame.ts_us - ts) / 1e6)
    return out


RERUN_LABEL = "rerun of "  # how a rerun's session label starts (the default --session skips them)


def started_label(source: Path | None, session: RecordedSession, upstream: str) -> str:
    where = f"{source.name} " if source is not None else ""
    return f"{RERUN_LABEL}{where}session {session.session_id} against {upstream}"
