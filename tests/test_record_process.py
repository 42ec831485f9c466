"""`wsproxy record` as a real process: SIGINT keeps everything, SIGKILL keeps what was committed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time

import aiohttp
import pytest

from conftest import recorded


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def start_recorder(upstream: str, db, port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsproxy", "record", "--listen", f"127.0.0.1:{port}", "--upstream", upstream,
        "--db", str(db), "--log-format", "json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    line = await asyncio.wait_for(process.stderr.readline(), 20)
    assert b'"event":"listening"' in line, line
    return process


async def pump_traffic(url: str, stop_after: float) -> int:
    """Echo traffic as fast as possible on 5 connections; returns messages the client got back."""
    received = 0

    async def one(index: int) -> None:
        nonlocal received
        async with aiohttp.ClientSession() as http:
            try:
                ws = await http.ws_connect(f"{url}/echo?c={index}")
                deadline = time.monotonic() + stop_after
                n = 0
                while time.monotonic() < deadline:
                    await ws.send_str(f"message {index}-{n}")
                    msg = await ws.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        return
                    received += 1
                    n += 1
            except (aiohttp.ClientError, ConnectionError):
                return
    await asyncio.gather(*(one(i) for i in range(5)))
    return received


async def test_sigint_during_heavy_traffic_keeps_every_relayed_frame(upstream, tmp_path) -> None:
    db, port = tmp_path / "sigint.duckdb", free_port()
    process = await start_recorder(upstream, db, port)
    traffic = asyncio.create_task(pump_traffic(f"ws://127.0.0.1:{port}", stop_after=30))
    await asyncio.sleep(1.5)
    process.send_signal(signal.SIGINT)  # mid-traffic
    received = await asyncio.wait_for(traffic, 30)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    assert b'"event":"summary"' in err
    assert received > 100
    # every echo the clients got back crossed the proxy twice: both copies are in the file
    server_frames = recorded(db, "SELECT count(*) FROM frames WHERE sender='server' AND kind='text'")[0][0]
    client_frames = recorded(db, "SELECT count(*) FROM frames WHERE sender='client' AND kind='text'")[0][0]
    assert server_frames >= received
    assert client_frames >= server_frames
    assert recorded(db, "SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL") == [(1,)]


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
async def test_sigkill_leaves_a_readable_file_with_everything_older_than_the_commit_interval(upstream, tmp_path) -> None:
    db, port = tmp_path / "sigkill.duckdb", free_port()
    process = await start_recorder(upstream, db, port)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://127.0.0.1:{port}/echo")
        for n in range(50):
            await ws.send_str(f"before the kill {n}")
            await ws.receive()
        await asyncio.sleep(1.0)  # well past the 200 ms commit interval
        process.kill()
        await process.wait()
    rows = recorded(db, "SELECT count(*) FROM frames WHERE text LIKE 'before the kill %'")
    assert rows == [(100,)]
    assert recorded(db, "SELECT count(*) FROM sessions") == [(1,)]
