"""The web view on recordings of every kind (issue 24), in a real Chromium: the demo with findings,
HAR imports of both dialects (Chrome DevTools' as wsproxy exports it, Playwright's), the schema v1 and
v4 golden fixtures, a recording made with --inject, a rerun session, connections the upstream refused
or could not be reached for, and binary and invalid frames. Every page of each — the landing page and
each connection — must draw without a page error, a console error or an error the page shows."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from rich.console import Console

from browser import assert_clean, watch
from helpers import upstream_app
from test_browser import browser  # noqa: F401 - the Chromium fixture
from wsproxy.chat.client import ChatError, overview_flow
from wsproxy.chat.faults import Faults
from wsproxy.chat.server import start_chat_server
from wsproxy.cli.demo import run_demo
from wsproxy.core.inject import parse_rule
from wsproxy.inspect.exporter import export_session
from wsproxy.inspect.importer import import_file
from wsproxy.record.session import RecordOptions, RecordSession
from wsproxy.ui.reader import FileReader
from wsproxy.ui.server import UiServer

pytest.importorskip("playwright.async_api")

FIXTURES = Path(__file__).parent.parent / "fixtures"
ARTIFACTS = Path(os.environ.get("WSPROXY_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")) / "ui-kinds"
KINDS = ["demo", "har-chrome", "har-playwright", "schema-v1", "schema-v4", "inject", "rerun", "refused", "binary-invalid"]


async def _record(db: Path, upstream: str, **options) -> RecordSession:
    session = RecordSession(RecordOptions(listen="127.0.0.1:0", upstream=upstream, db=db, **options))
    await session.start()
    return session


async def _inject(db: Path) -> None:
    server = await start_chat_server("127.0.0.1", 0)
    session = await _record(db, server.url, inject=[parse_rule("drop response type=new once"),
                                                    parse_rule("duplicate event type=new once")])
    try:
        await overview_flow(session.url, timeout=1.0)
    except ChatError:  # the dropped response: the users give up, as a client would
        pass
    await session.stop()
    await server.stop()


async def _rerun(db: Path) -> None:
    await run_demo(db, Console(file=io.StringIO()), Faults.parse(""))
    server = await start_chat_server("127.0.0.1", 0)
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "wsproxy", "rerun", str(db), "--upstream",
                                                   server.url, "--quiet", stdout=asyncio.subprocess.DEVNULL)
    assert await asyncio.wait_for(process.wait(), 60) in (0, 1)
    await server.stop()


async def _refused_and_odd_frames(db: Path, odd: bool) -> None:
    runner = web.AppRunner(upstream_app(), shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    upstream = f"ws://127.0.0.1:{runner.addresses[0][1]}"
    session = await _record(db, upstream)
    async with aiohttp.ClientSession() as http:
        if odd:
            async with http.ws_connect(f"{session.url}/echo?user=odd") as ws:
                for send in (ws.send_bytes(b"\x00\x01binary\xff"), ws.send_str("{not json"),
                             ws.send_str('{"type": "telegram"}'), ws.send_str("[1, 2, 3]")):
                    await send
                    await ws.receive(timeout=5)
        else:
            for path in ("/forbidden?user=denied", "/echo?user=fine"):
                try:
                    async with http.ws_connect(f"{session.url}{path}") as ws:
                        await ws.send_str('{"type": "request", "id": "1", "payloadType": "subscribe", '
                                          '"timestamp": 1, "payload": {}}')
                        await ws.receive(timeout=5)
                except aiohttp.WSServerHandshakeError:
                    pass
    await session.stop()
    await runner.cleanup()
    if not odd:  # and a connection whose upstream could not be reached at all
        session = await _record(db, "ws://127.0.0.1:9")
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(f"{session.url}/chat?user=nobody")
        await session.stop()


def make(kind: str, folder: Path) -> Path:
    db = folder / f"{kind}.duckdb"
    if kind == "demo":
        asyncio.run(run_demo(db, Console(file=io.StringIO()), Faults.parse("duplicate-response,skip-event-id", 3)))
    elif kind == "har-chrome":
        demo = make("demo", folder)
        export_session(demo, folder / "chrome.har", "har", None)
        import_file(folder / "chrome.har", db)
    elif kind == "har-playwright":
        import_file(FIXTURES / "playwright-1.65-chromium.har", db)
    elif kind in ("schema-v1", "schema-v4"):
        shutil.copy(FIXTURES / f"{kind}-demo.duckdb", db)
    elif kind == "inject":
        asyncio.run(_inject(db))
    elif kind == "rerun":
        asyncio.run(_rerun(db))
    else:
        asyncio.run(_refused_and_odd_frames(db, odd=kind == "binary-invalid"))
    return db


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("kinds")
    return {kind: make(kind, folder) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
async def test_every_page_of_every_kind_of_recording_draws_without_an_error(recordings, browser, kind) -> None:  # noqa: F811
    reader = FileReader(recordings[kind])
    server = UiServer(reader)
    await server.start()
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    tab = await context.new_page()
    watch(tab)
    base = server.url.split("/?")[0]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        async with aiohttp.ClientSession(headers={"X-Wsproxy-Token": server.token}) as http, \
                http.get(f"{base}/api/summary") as response:
            sessions = [s["id"] for s in (await response.json())["sessions"]]
        for session in sessions:  # every session: an import, a rerun and a refused upstream each add one
            await tab.goto(f"{base}/?token={server.token}&session={session}")
            rows = tab.locator("#connections tr.connection")
            await rows.first.wait_for()
            await tab.locator("#timeline tr").first.wait_for(state="attached")
            await tab.wait_for_timeout(300)  # the charts and the diagram ask after the table
            await tab.screenshot(path=str(ARTIFACTS / f"{kind}-session-{session}.png"))
            await assert_clean(tab)
            conns = [int(await rows.nth(i).get_attribute("data-conn") or 0) for i in range(min(await rows.count(), 4))]
            for conn in conns:
                await tab.goto(f"{base}/connections/{conn}?token={server.token}")
                await tab.locator("#matched", has_text="frame").wait_for()
                await tab.locator("#header-lists h3").nth(1).wait_for(state="attached")  # in a closed <details>
                assert await tab.locator("#header-lists tr").count() > 0  # the request's headers, listed
                await tab.wait_for_timeout(200)
                await tab.screenshot(path=str(ARTIFACTS / f"{kind}-connection-{conn}.png"))
                await assert_clean(tab)
    finally:
        await context.close()
        await server.stop()
        reader.close()
