"""The web view in a real Chromium (Playwright), on a recording being made: the reference chat
server, the recording proxy and the view of `record --ui` (the recorder's own connection), all on
127.0.0.1. A screenshot of each page is kept in test-artifacts/ui/ (docs/ui.md shows them)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from browser import assert_clean, watch
from test_browser import browser  # noqa: F401 - the Chromium fixture
from wsproxy.chat.client import ChatClient
from wsproxy.ui.reader import RecorderReader
from wsproxy.ui.server import UiServer

pytest.importorskip("playwright.async_api")

ARTIFACTS = Path(os.environ.get("WSPROXY_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")) / "ui"
MARKUP = ['<img src=x onerror="window.__pwned = 1">', "<script>window.__pwned = 2</script>",
          '<svg onload="window.__pwned = 3"></svg>']


class LiveView:
    """A recording in progress (alice and bob chatting through the proxy) and its web view."""

    def __init__(self, session, server: UiServer, alice: ChatClient, bob: ChatClient) -> None:
        self.session, self.server, self.alice, self.bob = session, server, alice, bob

    def page(self, path: str = "/", **query: object) -> str:
        extra = "".join(f"&{key}={value}" for key, value in query.items())
        return self.server.url.replace("/?", f"{path}?") + extra

    def conn(self, user: str) -> int:
        return recorded_live(self, f"SELECT conn_id FROM connections WHERE query = 'user={user}'")[0][0]


def recorded_live(view: LiveView, sql: str) -> list[tuple]:
    """SQL on the recording being written (through the recorder's connection, as the view reads it)."""
    cursor = view.session.recorder.database.cursor()
    try:
        return cursor.execute(sql).fetchall()
    finally:
        cursor.close()


@pytest.fixture
async def view(chat_server, proxy):
    session = await proxy(chat_server.url)
    reader = RecorderReader(session.sql)
    server = UiServer(reader, session.recorder.session_id)
    await server.start()
    alice = await ChatClient.connect(session.url, "alice")
    bob = await ChatClient.connect(session.url, "bob")
    await alice.subscribe()
    await bob.subscribe()
    for n in range(30):
        await alice.request("new", {"chatId": "bob", "message": f"hello {n} from alice"})
    for text in MARKUP:
        await alice.request("new", {"chatId": "bob", "message": text})
    await bob.wait_event("new", count=30 + len(MARKUP))
    await bob.request("new", {"chatId": "alice", "message": "hi alice"})
    yield LiveView(session, server, alice, bob)
    await alice.close()
    await bob.close()
    await server.stop()
    reader.close()


@pytest.fixture
async def page(browser):  # noqa: F811
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    tab = await context.new_page()
    tab.requested = []  # every URL the page asked for: none may leave 127.0.0.1
    tab.on("request", lambda request: tab.requested.append(request.url))
    watch(tab)
    yield tab
    await assert_clean(tab)
    await context.close()
    assert [url for url in tab.requested if not url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:"))] == []


async def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


async def matched(page) -> int:
    text = await page.locator("#matched").inner_text()
    return int(text.split()[0].replace(",", ""))


async def until_matched(page, count: int) -> None:
    """Wait until the list says it holds ``count`` frames (the page's policy forbids eval: no wait_for_function)."""
    await page.locator("#matched", has_text=re.compile(rf"^{count:,} frames?$")).wait_for(timeout=5000)


async def test_landing_page_shows_connections_charts_and_newest_frames(view, page) -> None:
    await page.goto(view.page())
    rows = page.locator("#connections tr.connection")
    await rows.nth(1).wait_for()
    assert await rows.count() == 2
    sent = recorded_live(view, f"SELECT count(*) FROM frames WHERE conn_id = {view.conn('alice')} AND sender = 'client'")[0][0]
    assert sent == 1 + 30 + len(MARKUP)
    assert await page.locator("#connections tr.connection", has_text="alice").locator("td.num").first.inner_text() == str(sent)
    assert await page.locator("#timeline tr.frame").count() == 50
    assert await page.locator("#rate svg rect").count() > 0
    assert await page.locator("#latency svg g.bar", has_text="new").count() == 1
    await page.locator("#diagram img.sequence").wait_for()
    assert await page.locator("#diagram img.sequence").evaluate("img => img.complete && img.naturalWidth > 300")
    await shot(page, "landing")
    await page.locator("#connections a", has_text="bob").click()
    await page.wait_for_url("**/connections/*")
    await page.locator("#rows .frame-row:not(.loading)").first.wait_for()
    assert "token=" in page.url  # the link keeps the token: the page is shareable as it is


async def test_deep_link_opens_a_connection_at_a_frame_and_pairs_link(view, page) -> None:
    conn = view.conn("alice")
    request_seq, response_seq = recorded_live(view, f"SELECT request_seq, response_seq FROM exchanges WHERE conn_id = {conn} "
                                                    "AND payload_type = 'new' ORDER BY request_seq LIMIT 1 OFFSET 20")[0]
    await page.goto(view.page(f"/connections/{conn}", seq=response_seq))
    selected = page.locator(f"#rows .frame-row.selected[data-seq='{response_seq}']")
    await selected.wait_for()
    await page.locator("#detail h2", has_text=f"Frame #{response_seq}").wait_for()
    assert "response" in await selected.inner_text()
    await selected.locator("a.pair-link").click()  # to its request
    await page.locator(f"#rows .frame-row.selected[data-seq='{request_seq}']").wait_for()
    await page.locator("#detail h2", has_text=f"Frame #{request_seq}").wait_for()
    assert "hello" in await page.locator("#detail pre.payload").inner_text()
    await shot(page, "connection")


async def test_a_frame_recorded_after_the_page_opened_appears_without_moving_the_list(view, page) -> None:
    conn = view.conn("bob")
    await page.goto(view.page(f"/connections/{conn}"))
    await page.locator("#rows .frame-row:not(.loading)").first.wait_for()
    before = await matched(page)
    # at the end of the list it follows the recording, as tail -f does
    await page.locator("#list").evaluate("list => { list.scrollTop = list.scrollHeight; }")
    started = time.perf_counter()
    await view.alice.request("new", {"chatId": "bob", "message": "arrived while you looked"})
    await page.locator("#rows .frame-row", has_text="arrived while you looked").wait_for(timeout=5000)
    print(f"live update: the new frame showed {(time.perf_counter() - started) * 1000:.0f} ms after it was sent")
    assert await matched(page) == before + 1  # bob's event (alice's request is on alice's connection)
    # elsewhere in the list, new frames extend it and what is on show stays where it is
    await page.locator("#list").evaluate("list => { list.scrollTop = 0; }")
    await page.wait_for_timeout(100)
    first_seq = await page.locator("#rows .frame-row").first.get_attribute("data-seq")
    await view.alice.request("new", {"chatId": "bob", "message": "and another one"})
    await until_matched(page, before + 2)
    await page.wait_for_timeout(300)
    assert await page.locator("#rows .frame-row").first.get_attribute("data-seq") == first_seq
    assert await page.locator("#list").evaluate("list => list.scrollTop") == 0


async def test_search_and_the_sql_filter_narrow_the_list(view, page) -> None:
    conn = view.conn("alice")
    await page.goto(view.page(f"/connections/{conn}"))
    await page.locator("#rows .frame-row:not(.loading)").first.wait_for()
    total = await matched(page)
    await page.fill("input[name=q]", "HELLO 1")
    await page.press("input[name=q]", "Enter")
    expected = recorded_live(view, f"SELECT count(*) FROM frames WHERE conn_id = {conn} "
                                   "AND contains(lower(text), 'hello 1')")[0][0]
    await until_matched(page, expected)
    assert 0 < expected < total and await page.locator("#rows .frame-row").count() == expected
    await page.fill("input[name=q]", "")
    await page.fill("input[name=where]", "sender = 'server' AND msg_type = 'response'")
    await page.click("#filters button[type=submit]")
    expected = recorded_live(view, f"SELECT count(*) FROM frames WHERE conn_id = {conn} AND sender = 'server' "
                                   "AND msg_type = 'response'")[0][0]
    await until_matched(page, expected)
    assert "where=" in page.url  # the filter is in the link
    await shot(page, "filtered")
    page.allowed += ["must be one condition", "status of 400"]  # the refusal, shown and logged on purpose
    await page.fill("input[name=where]", "1=1); DROP TABLE frame_store; SELECT (1")
    await page.click("#filters button[type=submit]")
    await page.locator("#error", has_text="must be one condition").wait_for()


async def test_markup_in_a_payload_stays_text(view, page) -> None:
    conn = view.conn("bob")
    await page.goto(view.page(f"/connections/{conn}", q="window.__pwned"))
    rows = page.locator("#rows .frame-row:not(.loading)")
    await rows.nth(len(MARKUP) - 1).wait_for()
    for text in MARKUP:  # shown as sent: inside the JSON text, its quotes escaped
        row = page.locator("#rows .frame-row", has_text=json.dumps(text)[1:-1])
        assert await row.count() == 1
    await rows.first.click()
    await page.locator("#detail pre.payload", has_text=json.dumps(MARKUP[0])[1:-1]).wait_for()
    await page.goto(view.page())
    await page.locator("#timeline tr.frame", has_text=json.dumps(MARKUP[2])[1:-1]).first.wait_for()
    for url in (view.page(f"/connections/{conn}", q="window.__pwned"), view.page()):
        await page.goto(url)
        await page.wait_for_timeout(500)
        assert await page.evaluate("window.__pwned") is None
        # no element was made of a payload (the policy would also stop a handler, but nothing got that far)
        assert await page.locator("#rows img, #rows script, #rows svg, #detail img, #detail script, "
                                  "#timeline img, #timeline script, #timeline svg").count() == 0
