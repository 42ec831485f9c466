"""Shared fixtures: real servers on 127.0.0.1, on free ports."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Callable

import pytest

from wsproxy.chat.faults import Faults
from wsproxy.chat.server import RunningServer, start_chat_server

pytest_plugins = ["pytester"]  # the pytest plugin's tests run the documented example in a subprocess

# Tests press Ctrl-C on wsproxy (SIGINT) as a user at a terminal would. A suite started as a background
# job (`./dev.sh test &` in a script) inherits SIGINT ignored, and every child would too: `show --follow`
# and `query` could not be interrupted and those tests hung. Children of a handled SIGINT start with the
# default, as at a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
async def chat_server() -> AsyncIterator[RunningServer]:
    """The reference chat server, well-behaved."""
    server = await start_chat_server("127.0.0.1", 0)
    yield server
    await server.stop()


@pytest.fixture
async def faulty_chat_server() -> AsyncIterator[Callable]:
    """A factory: ``await faulty_chat_server("drop-response")`` starts a misbehaving server."""
    servers: list[RunningServer] = []

    async def start(spec: str, seed: int = 0) -> RunningServer:
        server = await start_chat_server("127.0.0.1", 0, Faults.parse(spec, seed))
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


# --- a programmable upstream for relay tests, and the recording proxy in front of it ---

from pathlib import Path  # noqa: E402

from aiohttp import web  # noqa: E402

from helpers import upstream_app  # noqa: E402
from wsproxy.record.session import RecordOptions, RecordSession  # noqa: E402


@pytest.fixture
async def upstream():
    runner = web.AppRunner(upstream_app(), handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"ws://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.fixture
async def proxy(tmp_path: Path):
    """A factory: ``session = await proxy(upstream_url, **options)`` starts `record` on a free port."""
    sessions: list[RecordSession] = []

    async def start(upstream_url: str, **options) -> RecordSession:
        options.setdefault("db", tmp_path / "rec.duckdb")
        session = RecordSession(RecordOptions(listen="127.0.0.1:0", upstream=upstream_url, **options))
        await session.start()
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        await session.stop()
