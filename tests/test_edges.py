"""The proxy's edges (issue 23): an upstream that never answers, clients that never finish their
handshake, a process out of file descriptors, and a recording that fails while it runs — each gets
a time limit, a bound and one clear line, never a hang or a silent stop."""

from __future__ import annotations

import asyncio
import json
import resource
import signal

import aiohttp
import pytest

from helpers import child, eventually, free_port, recorded, stop, until_listening

UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # a handshake request's headers, for plain HTTP clients


async def silent_server() -> tuple[asyncio.Server, int]:
    """Accepts TCP connections and never answers a byte: an upstream stuck before its handshake."""
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the other side gives up
        writer.close()
    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_an_upstream_that_never_answers_gets_504_with_why_within_the_connect_timeout(proxy, tmp_path) -> None:
    server, port = await silent_server()
    session = await proxy(f"ws://127.0.0.1:{port}", connect_timeout=1.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{session.url}/chat?user=a")
        assert refused.value.status == 504
        async with http.get(f"{session.url}/chat?user=a", headers=UPGRADE) as response:
            text = await response.text()
    assert loop.time() - started < 6
    assert "did not complete the WebSocket handshake within 1 s" in text
    await session.stop()
    server.close()
    rows = recorded(session.options.db, "SELECT status, error, closed_by FROM connections")
    assert rows and all(status == 504 and "within 1 s" in error and by == "proxy" for status, error, by in rows)


async def test_nothing_listening_upstream_gets_502_with_a_reason(proxy) -> None:
    session = await proxy(f"ws://127.0.0.1:{free_port()}")
    async with aiohttp.ClientSession() as http, http.get(f"{session.url}/chat", headers=UPGRADE) as response:
        assert response.status == 502
        text = await response.text()
    assert text.startswith("cannot reach upstream") and len(text.split(": ", 1)[1].strip()) > 5, text


async def closed_by_peer(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within) == b""
    except (TimeoutError, ConnectionError):
        return False


async def test_clients_that_never_finish_their_handshake_are_closed_and_bounded(upstream, proxy) -> None:
    session = await proxy(upstream, handshake_timeout=1.0, max_pending=5)
    notices: list[str] = []
    session.relay.on_notice = notices.append
    port = session.port
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(10)]
    # past the bound: closed at once
    early = await asyncio.gather(*(closed_by_peer(reader, 0.5) for reader, _ in idle[5:]))
    assert all(early) and session.relay.counters.refused_pending >= 5
    assert len(notices) == 1 and "have not finished their handshake" in notices[0]
    # byte-a-second: closed by the handshake timeout, like the idle ones
    slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", port)

    async def trickle() -> None:
        for byte in b"GET /echo HTTP/1.1\r\n":
            slow_writer.write(bytes([byte]))
            await asyncio.sleep(0.2)
    trickling = asyncio.create_task(trickle())
    assert await closed_by_peer(slow_reader, 3.0)
    trickling.cancel()
    assert all(await asyncio.gather(*(closed_by_peer(reader, 3.0) for reader, _ in idle[:5])))
    for _, writer in idle:
        writer.close()
    # a real client gets through once they are gone
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{session.url}/echo") as ws:
        await ws.send_str("hi")
        assert (await ws.receive(timeout=5)).data == "hi"


def limit_files(count: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))
    return apply


async def test_out_of_file_descriptors_is_said_once_and_recovers(upstream, tmp_path) -> None:
    port = free_port()
    sockets = []
    async with child("record", "--listen", f"127.0.0.1:{port}", "--upstream", upstream, "--db", str(tmp_path / "x.duckdb"),
                     "--quiet", "--handshake-timeout", "2", preexec_fn=limit_files(64)) as process:
        await until_listening(f"ws://127.0.0.1:{port}/echo")
        async with aiohttp.ClientSession() as http:
            for _ in range(120):  # more idle connections than it has descriptors
                try:
                    sockets.append(await asyncio.open_connection("127.0.0.1", port))
                except OSError:
                    break
            await asyncio.sleep(3.5)  # accept() fails for a while; then the idle ones time out
            for _, writer in sockets:
                writer.close()
            async def works() -> bool:
                try:
                    async with http.ws_connect(f"ws://127.0.0.1:{port}/echo") as ws:
                        await ws.send_str("hi")
                        return (await ws.receive(timeout=5)).data == "hi"
                except aiohttp.ClientError:
                    return False
            for _ in range(50):
                if await works():
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("no client got through after the idle ones were closed")
        code, text = await stop(process)
    assert code == 0, text
    assert text.count("out of file descriptors") == 1 and "Traceback" not in text, text


def limit_file_size(size: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), like a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return apply


@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_a_recording_that_fails_while_running_is_said_at_once_and_keeps_the_summary(upstream, tmp_path,
                                                                                         log_format) -> None:
    port = free_port()
    async with child("record", "--listen", f"127.0.0.1:{port}", "--upstream", upstream, "--db", str(tmp_path / "x.duckdb"),
                     "--quiet", "--log-format", log_format, preexec_fn=limit_file_size(3 * 1024 * 1024)) as process:
        await until_listening(f"ws://127.0.0.1:{port}/echo")
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"ws://127.0.0.1:{port}/echo", max_msg_size=0)
            try:
                for _ in range(200):  # 20 MB each way: far past what the file may hold
                    await ws.send_str("x" * 100_000)
                    if (await ws.receive(timeout=10)).type != aiohttp.WSMsgType.TEXT:
                        break
            except (ConnectionError, RuntimeError):
                pass
            await ws.close()
            assert process.stderr is not None
            line = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()  # said while it runs
            if '"event":"listening"' in line:
                line = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
            if log_format == "json":
                assert json.loads(line)["event"] == "recording_failed" and "failed" in json.loads(line)["message"]
            else:
                assert line.startswith("Error: writing to") and "new clients get 503" in line, line
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"ws://127.0.0.1:{port}/echo")
            assert refused.value.status == 503
        code, text = await stop(process)
    assert code == 2, text
    if log_format == "json":
        events = [json.loads(line)["event"] for line in text.splitlines()]
        assert events[-2:] == ["summary", "error"], text
    else:
        assert "recorded 2 connection(s)" in text and text.strip().splitlines()[-1].startswith("Error: "), text


async def test_a_client_that_goes_away_during_the_handshake_leaves_no_traceback(proxy, caplog) -> None:
    async def slow(request: aiohttp.web.Request) -> aiohttp.web.WebSocketResponse:
        await asyncio.sleep(0.3)  # the client gives up meanwhile
        ws = aiohttp.web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws
    app = aiohttp.web.Application()
    app.router.add_get("/{tail:.*}", slow)
    runner = aiohttp.web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", 0).start()
    session = await proxy(f"ws://127.0.0.1:{runner.addresses[0][1]}")
    for _ in range(5):
        _, writer = await asyncio.open_connection("127.0.0.1", session.port)
        writer.write(b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        await asyncio.sleep(0.1)
        writer.transport.abort()
    await eventually(lambda: session.relay.counters.total == 5 and session.relay.counters.open == 0, timeout=5)
    await asyncio.sleep(0.5)
    await session.stop()
    await runner.cleanup()
    assert not [r for r in caplog.records if r.levelname == "ERROR"], [r.getMessage() for r in caplog.records]
    rows = recorded(session.options.db, "SELECT error FROM connections")
    assert len(rows) == 5 and all("client went away during the handshake" in error for (error,) in rows), rows
