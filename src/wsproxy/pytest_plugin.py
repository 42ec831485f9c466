"""pytest plugin: replay a recorded WebSocket session as the server for a test (like VCR cassettes).

    @pytest.mark.wsproxy_recording("alice_says_hello.jsonl")
    def test_alice(wsproxy_replay):
        assert asyncio.run(my_client(wsproxy_replay.url)) == ...

The fixture serves ``fixtures/<name>`` (next to the test file) with ``wsproxy replay`` and fails
the test if the client diverged from the recording. Run pytest with
``--wsproxy-record=ws://real-server`` to record the fixture again through ``wsproxy record``
instead. The servers run in a background thread, so sync and async tests both work.
See docs/replay.md.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from wsproxy.core.replay_plan import Divergence


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wsproxy")
    group.addoption("--wsproxy-record", metavar="URL", default=None,
                    help="record the wsproxy_replay fixtures again against this real server (ws:// or wss://) "
                         "instead of replaying them")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "wsproxy_recording(name, timing='asap', match='strict', bind=None, allow_divergence=False, "
                   "fixtures='fixtures'): the recording the wsproxy_replay fixture serves")


@dataclass
class WsproxyServer:
    """What the fixture yields: ``url`` is the ws:// base URL to point the client at."""

    url: str
    mode: str  # "replay" or "record"
    recording: Path
    divergences: list[Divergence] = field(default_factory=list)


class _BackgroundLoop:
    """An event loop in a thread, so that the fixture works for sync and async tests alike."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="wsproxy-fixture", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def wsproxy_replay(request: pytest.FixtureRequest) -> Iterator[WsproxyServer]:
    marker = request.node.get_closest_marker("wsproxy_recording")
    if marker is None or not marker.args:
        raise pytest.UsageError("wsproxy_replay needs @pytest.mark.wsproxy_recording(\"NAME.jsonl\") on the test")
    options = dict(marker.kwargs)
    path = Path(request.node.path).parent / options.pop("fixtures", "fixtures") / marker.args[0]
    record_url = request.config.getoption("--wsproxy-record")
    background = _BackgroundLoop()
    try:
        if record_url:
            yield from _record(background, path, record_url)
        else:
            yield from _replay(background, path, options)
    finally:
        background.close()


def _replay(background: _BackgroundLoop, path: Path, options: dict[str, Any]) -> Iterator[WsproxyServer]:
    from wsproxy.core.replay_plan import ReplayPlan, parse_timing
    from wsproxy.replay.server import start_replay
    from wsproxy.replay.source import load_recording

    if not path.exists():
        pytest.fail(f"no recording {path}: record it once with pytest --wsproxy-record=ws://your-server", False)
    allow_divergence = options.pop("allow_divergence", False)
    session = load_recording(path)
    plan = ReplayPlan(session, match=options.get("match", "strict"), scale=parse_timing(options.get("timing", "asap")),
                      bind_key=options.get("bind"))
    running = background.run(start_replay(session, plan))
    server = WsproxyServer(running.url, "replay", path, running.server.divergences)
    try:
        yield server
    finally:
        background.run(running.stop())
    if server.divergences and not allow_divergence:
        lines = "\n".join(f"  {d.kind} (recorded conn {d.conn_id}): {d.message}" for d in server.divergences)
        pytest.fail(f"the client diverged from the recording {path.name}:\n{lines}\n"
                    f"(record it again with --wsproxy-record=URL if the client changed on purpose)", False)


def _record(background: _BackgroundLoop, path: Path, upstream: str) -> Iterator[WsproxyServer]:
    from wsproxy.inspect.jsonl import write_jsonl
    from wsproxy.record.session import RecordOptions, RecordSession
    from wsproxy.store.recording import open_recording

    workdir = Path(tempfile.mkdtemp(prefix="wsproxy-record-"))
    db = workdir / "recording.duckdb"
    session = RecordSession(RecordOptions(listen="127.0.0.1:0", upstream=upstream, db=db, label=path.stem))
    background.run(session.start())
    try:
        yield WsproxyServer(session.url, "record", path)
    finally:
        background.run(session.stop())
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".duckdb":
        shutil.copy(db, path)
    else:
        con = open_recording(db)
        try:
            with path.open("w", encoding="utf-8") as out:
                write_jsonl(con, None, out)
        finally:
            con.close()
    shutil.rmtree(workdir, ignore_errors=True)
