"""The web view on long recordings, in Chromium: how long pages take to open, to show rows after a
jump anywhere in a long connection, and how soon a frame recorded while the page is open shows.

    .venv/bin/python benchmarks/bench_ui.py [--frames 1000000] [--small 10000] [--rounds 3] [--jumps 20]

Builds (once, then reuses) a recording of --frames and one of --small frames (benchmarks/big_recording.py,
10 connections each), serves each with `wsproxy ui` (its own process, as a user runs it) and opens
them in Debian's Chromium, alternating small and big, round after round: page load to the landing
page drawn (connections, charts, newest frames) and to a connection's first rows. The ratio big/small
says whether opening depends on the size of the recording (target: the 1,000,000-frame one opens in
under 2 s). Then jumps to random places in the big recording's first connection (100,000 frames):
time until the rows there are drawn. Last, `wsproxy record --ui` with a page following a
connection: time from sending a message to its row in the page.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from big_recording import build
from playwright.async_api import async_playwright

from browser import CHROMIUM_ARGS, chromium_path

WSPROXY = [sys.executable, "-m", "wsproxy"]


def serve(db: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([*WSPROXY, "ui", str(db), "--listen", "127.0.0.1:0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return process, process.stdout.readline().strip()


async def open_blank(page, url: str) -> float:
    """Chromium's own cost of a first page in a new tab: the smallest asset of the same server."""
    started = time.perf_counter()
    await page.goto(url.replace("/?", "/static/favicon.svg?"))
    return time.perf_counter() - started


async def open_landing(page, url: str) -> float:
    started = time.perf_counter()
    await page.goto(url)
    await page.locator("#connections tr.connection").first.wait_for()
    await page.locator("#timeline tr.frame").first.wait_for()
    await page.locator("#latency svg").wait_for()
    await page.locator("#rules svg, #rules p").first.wait_for()
    return time.perf_counter() - started


async def open_connection(page, url: str) -> float:
    started = time.perf_counter()
    await page.goto(url.replace("/?", "/connections/1?"))
    await page.locator("#rows .frame-row:not(.loading)").first.wait_for()
    await page.locator("#matched").filter(has_text="frames").wait_for()
    return time.perf_counter() - started


async def jump(page, fraction: float) -> float:
    started = time.perf_counter()
    await page.locator("#list").evaluate(f"list => {{ list.scrollTop = (list.scrollHeight - list.clientHeight) * {fraction}; }}")
    await page.locator("#rows .frame-row.loading").first.wait_for(state="detached", timeout=10_000)
    return time.perf_counter() - started


async def live_delay(browser, samples: int) -> list[float]:
    """record --ui in its own process; a page follows a connection; a client sends messages through."""
    from wsproxy.chat.client import ChatClient
    from wsproxy.chat.server import start_chat_server
    chat = await start_chat_server("127.0.0.1", 0)
    with tempfile.TemporaryDirectory() as tmp:
        recorder = await asyncio.create_subprocess_exec(
            *WSPROXY, "record", "--upstream", chat.url, "--listen", "127.0.0.1:0", "--db", f"{tmp}/live.duckdb",
            "--ui", "127.0.0.1:0", "--log-format", "json", stderr=asyncio.subprocess.PIPE)
        lines = [(await recorder.stderr.readline()).decode() for _ in range(2)]
        proxy = next(line for line in lines if '"listening"' in line).split('"url":"')[1].split('"')[0]
        url = next(line for line in lines if '"ui"' in line).split('"url":"')[1].split('"')[0]
        alice = await ChatClient.connect(proxy, "alice")
        await alice.subscribe()
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        await page.goto(url.replace("/?", "/connections/1?"))
        await page.locator("#rows .frame-row:not(.loading)").first.wait_for()
        delays = []
        for n in range(samples):
            started = time.perf_counter()
            await alice.request("new", {"chatId": "bob", "message": f"live {n}"})
            await page.locator("#rows .frame-row", has_text=f'"live {n}"').wait_for(timeout=10_000)
            delays.append(time.perf_counter() - started)
            await asyncio.sleep(random.uniform(0.05, 0.3))  # not in step with the page's polling
        await alice.close()
        await page.close()
        recorder.terminate()
        await recorder.wait()
    await chat.stop()
    return delays


def line(name: str, values: list[float]) -> str:
    values = sorted(values)
    return (f"{name:<34} median {statistics.median(values) * 1000:7.0f} ms   best {values[0] * 1000:7.0f} ms   "
            f"worst {values[-1] * 1000:7.0f} ms   (n={len(values)})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jumps", type=int, default=20)
    parser.add_argument("--live", type=int, default=20, help="live-update samples")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "wsproxy-bench-ui")
    args = parser.parse_args()
    args.dir.mkdir(exist_ok=True)
    files = {}
    for name, frames in (("small", args.small), ("big", args.frames)):
        files[name] = args.dir / f"{frames}.duckdb"
        if not files[name].exists():
            print(f"building {files[name]} ({frames:,} frames) ...", flush=True)
            build(files[name], frames, 10)
    results: dict[str, dict[str, list[float]]] = {name: {"landing": [], "connection": []} for name in files}
    blank: list[float] = []
    random.seed(1)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        for _ in range(args.rounds):
            for name in ("small", "big"):  # A B A B: both see the same machine
                process, url = serve(files[name])
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                blank.append(await open_blank(page, url))
                await page.close()
                page = await browser.new_page(viewport={"width": 1400, "height": 900})
                results[name]["landing"].append(await open_landing(page, url))
                results[name]["connection"].append(await open_connection(page, url))
                await page.close()
                process.terminate()
                process.wait()
        process, url = serve(files["big"])
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        await open_connection(page, url)
        jumps = [await jump(page, random.random()) for _ in range(args.jumps)]
        await page.close()
        process.terminate()
        process.wait()
        delays = await live_delay(browser, args.live)
        await browser.close()
    print(f"\nweb view, Chromium {chromium_path()}, recordings of {args.small:,} and {args.frames:,} frames")
    print(line("a blank page (Chromium's own cost)", blank))
    for what in ("landing", "connection"):
        for name in ("small", "big"):
            frames = args.small if name == "small" else args.frames
            print(line(f"{what} page, {frames:,} frames", results[name][what]))
        ratio = statistics.median(results["big"][what]) / statistics.median(results["small"][what])
        print(f"{'':<34} big / small: {ratio:.2f}")
    print(line("jump anywhere in 100,000 frames", jumps))
    print(line("live update (send -> row shown)", delays))


if __name__ == "__main__":
    asyncio.run(main())
