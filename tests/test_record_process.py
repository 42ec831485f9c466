"""`wsproxy record` as a real process: SIGINT keeps everything, SIGKILL keeps what was committed."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import aiohttp
import pytest

from helpers import free_port, recorded, start_recorder


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


async def test_fail_on_error_prints_findings_live_and_exits_1(faulty_chat_server, tmp_path) -> None:
    from wsproxy.chat.client import overview_flow
    server = await faulty_chat_server("orphan-response:always")
    db, port = tmp_path / "ci.duckdb", free_port()
    process = await start_recorder(server.url, db, port, "--fail-on", "error", log_format="text")
    await overview_flow(f"ws://127.0.0.1:{port}")
    await asyncio.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    text = err.decode()
    assert process.returncode == 1, text
    # a storm of one rule is cut to 5 lines and a summary; the final line counts them all
    assert text.count("ERROR   orphan-response") == 5
    assert "more orphan-response not shown (rate limit; all are in the violations table)" in text
    total = recorded(db, "SELECT count(*) FROM violations WHERE code = 'orphan-response'")[0][0]
    assert total > 5 and f"{total} errors" in text


async def test_fail_on_error_exits_0_on_clean_traffic(chat_server, tmp_path) -> None:
    from wsproxy.chat.client import overview_flow
    db, port = tmp_path / "ci.duckdb", free_port()
    process = await start_recorder(chat_server.url, db, port, "--fail-on", "warning", "--quiet")
    await overview_flow(f"ws://127.0.0.1:{port}")
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    assert b'"findings":{"error":0,"warning":0,"info":0}' in err
