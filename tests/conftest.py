"""Shared fixtures: real servers on 127.0.0.1, on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from wsproxy.chat.faults import Faults
from wsproxy.chat.server import RunningServer, start_chat_server


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
