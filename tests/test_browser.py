"""What a person sees in a real browser, and captures a real browser writes: the demo's diagram
with the network off, and a HAR that Playwright records of a page talking to the chat server."""

from __future__ import annotations

import json
import time

import pytest
from aiohttp import web

from browser import CHROMIUM_ARGS, chromium_path
from helpers import recorded, wsproxy
from wsproxy.inspect.importer import import_file

playwright_api = pytest.importorskip("playwright.async_api")


@pytest.fixture
async def browser():
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def test_the_demo_page_draws_its_diagram_with_the_network_off(browser, tmp_path) -> None:
    db = tmp_path / "demo.duckdb"
    assert wsproxy("demo", "--db", str(db)).returncode == 0
    page_file = tmp_path / "demo.html"
    context = await browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(page_file.as_uri())
    diagram = page.locator("svg.sequence-diagram")
    await diagram.wait_for(state="visible", timeout=10_000)
    box = await diagram.bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 400
    messages = recorded(db, "SELECT count(*) FROM frames WHERE kind IN ('text', 'binary', 'close')")[0][0]
    assert await page.locator("svg.sequence-diagram g.message").count() == messages
    for name in ("User1 #1", "User2 #2", "User1 #3", "Server"):
        assert await page.locator("svg.sequence-diagram g.participant text", has_text=name).count() == 2  # top, bottom
    visible = await page.locator("body").inner_text()
    assert "sequenceDiagram" not in visible and "#35;" not in visible  # no raw Mermaid source on show
    assert [url for url in requested if not url.startswith("file:")] == []
    await page.screenshot(path=str(tmp_path / "demo.png"))
    await context.close()


PAGE = """<!doctype html><title>start</title><script>
const ws = new WebSocket(URL_HERE);
const now = () => Date.now() / 1000;
ws.onopen = () => ws.send(JSON.stringify({type: "request", timestamp: now(), id: "r1", payloadType: "subscribe",
                                          payload: {}}));
ws.onmessage = (message) => {
  const envelope = JSON.parse(message.data);
  if (envelope.id === "r1") {
    ws.send(JSON.stringify({type: "request", timestamp: now(), id: "r2", payloadType: "new",
                            payload: {chatId: "bob", message: "hello from a browser"}}));
  } else if (envelope.id === "r2") {
    document.title = "done";
  }
};
</script>"""


async def test_a_har_written_by_playwright_imports_with_the_times_it_was_sent(browser, chat_server, tmp_path) -> None:
    ws_url = json.dumps(f"{chat_server.url}/chat?user=alice")

    async def page_with_a_chat_client(_: web.Request) -> web.Response:
        return web.Response(text=PAGE.replace("URL_HERE", ws_url), content_type="text/html")
    app = web.Application()
    app.router.add_get("/", page_with_a_chat_client)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    har = tmp_path / "playwright.har"
    before_us = time.time_ns() // 1000
    context = await browser.new_context(record_har_path=str(har))
    page = await context.new_page()
    await page.goto(f"http://127.0.0.1:{runner.addresses[0][1]}/")
    await page.wait_for_function("document.title === 'done'", timeout=10_000)
    await context.close()  # writes the HAR
    after_us = time.time_ns() // 1000
    await runner.cleanup()
    written = json.loads(har.read_text())
    assert written["log"]["creator"]["name"] == "Playwright"
    sockets = [e for e in written["log"]["entries"] if e.get("_webSocketMessages")]
    assert len(sockets) == 1 and all(m["time"] > 1e11 for m in sockets[0]["_webSocketMessages"])  # milliseconds

    db = tmp_path / "playwright.duckdb"
    imported = import_file(har, db)
    assert imported.skipped == {} and imported.frames == len(sockets[0]["_webSocketMessages"]) >= 4
    rows = recorded(db, "SELECT epoch_us(f.ts), f.sender, f.msg_type, f.msg_id, epoch_us(c.opened_at), "
                        "json_extract(f.text, '$.timestamp')::DOUBLE FROM frames f JOIN connections c "
                        "USING (conn_id) ORDER BY f.seq")
    for ts, _sender, _msg_type, _msg_id, opened, stamp in rows:
        assert before_us <= opened <= ts <= after_us, (ts, opened, before_us, after_us)
        assert abs(ts / 1e6 - stamp) < 2.0  # the envelope's own timestamp, set when it was sent
    assert [(s, t, i) for _, s, t, i, _, _ in rows][:4] == [
        ("client", "request", "r1"), ("server", "response", "r1"), ("client", "request", "r2"),
        ("server", "response", "r2")]
