"""Throughput and latency through `wsproxy record` against a direct connection, in one run.

    .venv/bin/python benchmarks/bench_record.py [--seconds 3] [--load-procs 1] [--soak 90]

The upstream runs in its own process, restarted before every measurement (the chat server keeps every
message it is sent): the reference chat server (`--server chat`, the default, as issue 3 defines the
comparison), or a bare aiohttp echo server (`--server echo`), which does no work of its own and so
exposes the proxy's full cost. Every connection subscribes, then sends `new` requests (unique ids,
padded to the wanted size) and counts the replies (responses or echoes), with a window of requests in
flight; the proxy decodes and records everything. The proxy is a real `wsproxy record` process; the
load runs in separate processes.

Prints, per scenario (connections x message size): messages/s direct and through the proxy, their
ratio, p50/p99 round-trip latency, the proxy's CPU milliseconds per 1,000 messages and the seconds its
writer needed to catch up after the load stopped; then the p99 latency the proxy adds at a fixed
5,000 messages/s, the live checker's cost, a 100-connection soak with the proxy's RSS, the writer's
lag and drain time, and the proxy's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from wsproxy.core.profile import CHAT_PROFILE

ID_MEMORY = CHAT_PROFILE.request_id_memory  # request ids the checker remembers per connection
ECHO_SERVER = Path(__file__).parent.parent / "scripts" / "echo_server.py"  # shared with scripts/autobahn.py


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SUBSCRIBE = '{"type":"request","timestamp":1700000000.5,"id":"sub","payloadType":"subscribe","payload":{}}'


HEAD = '{"type":"request","timestamp":1700000000.5,"id":"r%08d","payloadType":"new","payload":{"chatId":"sink","message":"'
TAIL = '"}}'


@functools.cache
def _words(length: int) -> str:
    """A run of random words, compressible like chat text (about 2x) but never repeating: DuckDB
    compresses repeated text across rows almost to nothing, which would flatter the recorder."""
    rng = random.Random(length)
    vocabulary = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(256)]
    return " ".join(vocabulary[b] for b in os.urandom(length // 5 + 1))[:length]


def message(size: int, number: int) -> str:
    """The ``number``-th `new` request of ``size`` bytes: a unique id, and a message cut from 32 MiB
    of words at a place no nearby message shares."""
    body = max(0, size - len(HEAD) + 2 - len(TAIL))
    words = _words(max(32 << 20, 64 * body))
    at = (number * (body + 1)) % (len(words) - body)
    return (HEAD % number) + words[at:at + body] + TAIL


async def _connection_load(url: str, size: int, seconds: float, window: int, rate: float | None) -> tuple[int, list[float]]:
    import aiohttp
    latencies: list[float] = []
    count = 0
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url, max_msg_size=0)
        await ws.send_str(SUBSCRIBE)  # the chat server answers requests only after a subscribe
        await ws.receive()
        sent_at: list[float] = []
        deadline = time.perf_counter() + seconds
        done = asyncio.Event()
        window_open = asyncio.Event()  # a reply came: the sender may have room again

        async def reader() -> None:
            nonlocal count
            try:
                async for msg in ws:
                    latencies.append(time.perf_counter() - sent_at[count])
                    count += 1
                    window_open.set()
                    if count == len(sent_at) and time.perf_counter() >= deadline:
                        return
            finally:  # done, or the connection went away: the sender must not wait for more
                done.set()
                window_open.set()
        task = asyncio.create_task(reader())
        interval = 1.0 / rate if rate else 0.0
        next_send = time.perf_counter()
        while time.perf_counter() < deadline and not done.is_set():
            if rate:
                delay = next_send - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_send += interval
            elif len(sent_at) - count >= window:
                # Wait for a reply, not spin: a spinning load client takes a core from whatever it
                # measures on a small machine, and it spins more the slower the path it measures.
                window_open.clear()
                await window_open.wait()
                continue
            text = message(size, len(sent_at))
            sent_at.append(time.perf_counter())
            await ws.send_str(text)
        if count < len(sent_at):
            try:
                await asyncio.wait_for(done.wait(), 10)
            except TimeoutError:
                pass
        task.cancel()
        await ws.close()
    return count, latencies


def load_worker(url: str, connections: int, size: int, seconds: float, window: int, rate: float | None) -> tuple[int, list[float]]:
    async def run() -> tuple[int, list[float]]:
        results = await asyncio.gather(*(_connection_load(f"{url}/bench?user=bench{i}", size, seconds, window, rate)
                                         for i in range(connections)))
        return sum(r[0] for r in results), [lat for r in results for lat in r[1]]
    return asyncio.run(run())


def run_load(pool: ProcessPoolExecutor, procs: int, url: str, connections: int, size: int, seconds: float,
             window: int = 8, rate: float | None = None) -> tuple[float, list[float]]:
    shares = [connections // procs + (1 if i < connections % procs else 0) for i in range(procs)]
    shares = [s for s in shares if s]
    start = time.perf_counter()
    futures = [pool.submit(load_worker, url, share, size, seconds, window, rate) for share in shares]
    results = [f.result() for f in futures]
    elapsed = time.perf_counter() - start
    echoes = sum(r[0] for r in results)
    # each echo is two messages through the proxy (request up, echo down)
    return 2 * echoes / max(elapsed, seconds), [lat for r in results for lat in r[1]]


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, timeout: float = 60.0) -> float:
    """Seconds until the proxy's CPU goes quiet after a load: the writer has caught up."""
    start = time.perf_counter()
    last = cpu_ms(pid)
    while time.perf_counter() - start < timeout:
        time.sleep(0.1)
        now = cpu_ms(pid)
        if now - last < 5:  # under 5% of a core over 100 ms: nothing queued any more
            return time.perf_counter() - start - 0.1
        last = now
    return float("inf")


def peak_rss_mib(pid: int) -> float:
    return _status_mib(pid, "VmHWM:")


def _status_mib(pid: int, field: str) -> float:
    """A memory figure of /proc/PID/status (kB there) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mib(pid: int) -> float:
    return _status_mib(pid, "VmRSS:")


def soak(pool: ProcessPoolExecutor, procs: int, url: str, pid: int, seconds: float) -> None:
    """100 connections x 100 B for ``seconds``, sampling the proxy's RSS: it must stay flat.

    It rises at first by design: the checker remembers the last 10,000 request ids of each connection
    (``request_id_memory``, ~220 bytes each), and 100 connections fill that in about 40 s at full
    speed. Flat means flat once those windows are full."""
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            samples.append(rss_mib(pid))
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        rate, _ = run_load(pool, procs, url, 100, 100, seconds)
    finally:
        stop.set()
        sampler.join()
    if len(samples) < 4:
        return
    half = len(samples) // 2
    print(f"soak {seconds:.0f} s, 100 conns x 100 B at {rate:,.0f} msg/s: RSS max {max(samples):.0f} MiB; "
          f"max of the first half {max(samples[:half]):.0f} MiB, of the second {max(samples[half:]):.0f} MiB")
    filled = math.ceil(ID_MEMORY / (rate / 2 / 100))  # seconds until every connection's id window is full
    after = samples[filled:]
    if len(after) >= 20:
        print(f"  after the checker's id windows filled ({filled} s): RSS {statistics.mean(after[:10]):.0f} MiB "
              f"over the first 10 s, {statistics.mean(after[-10:]):.0f} MiB over the last 10 s "
              f"(growth {statistics.mean(after[-10:]) - statistics.mean(after[:10]):+.0f} MiB)")
    else:
        print(f"  (the checker's id windows fill after about {filled} s: soak for {filled + 30} s or more to "
              f"see RSS after that)")
    # every 10th one-second sample: DuckDB's cache and WAL make a saw-tooth, a leak makes a ramp
    print("  RSS MiB every 10 s: " + ", ".join(f"{sample:.0f}" for sample in samples[9::10]))


class Upstream:
    """The server both sides talk to, in its own process, restarted on the same port before every
    measurement: the chat server keeps every message it is sent (gigabytes after a few seconds of
    64 KiB messages), and a server that has filled the machine's memory slows down whoever comes
    next (direct 10 x 64 KiB: 17.7k, 19.9k, 19.0k, then 7.8k msg/s against one server)."""

    def __init__(self, kind: str, port: int) -> None:
        self.kind, self.port = kind, port
        self.process: subprocess.Popen | None = None

    def restart(self) -> None:
        self.stop()
        if self.kind == "echo":
            command = [sys.executable, str(ECHO_SERVER), str(self.port)]
        else:
            command = [sys.executable, "-m", "wsproxy", "chat-server", "--port", str(self.port)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:  # until it accepts connections
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the {self.kind} server did not start on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_proxy(port: int, upstream_port: int, db: Path, *extra: str) -> subprocess.Popen:
    proxy = subprocess.Popen([sys.executable, "-m", "wsproxy", "record", "--listen", f"127.0.0.1:{port}",
                              "--upstream", f"ws://127.0.0.1:{upstream_port}", "--db", str(db),
                              "--log-format", "json", "--max-message-size", str(1 << 20), *extra],
                             stderr=subprocess.PIPE, text=True)
    proxy.stderr.readline()  # "listening"
    return proxy


def fixed_rate_latency(pool: ProcessPoolExecutor, procs: int, direct_url: str, proxy_url: str, seconds: float,
                       rounds: int) -> None:
    """p99 latency added by the proxy at 5,000 messages/s (10 connections x 250 echoes/s x 2 messages),
    direct and proxied in alternating rounds. The machine stalls now and then for ~100 ms, on either
    side, so the added latency is the median of the proxied rounds' p99 less the median of the direct."""
    direct_p99, proxy_p99, direct_p50, proxy_p50 = [], [], [], []
    for _ in range(rounds):
        _, direct_lat = run_load(pool, procs, direct_url, 10, 100, seconds, rate=250)
        _, proxy_lat = run_load(pool, procs, proxy_url, 10, 100, seconds, rate=250)
        direct_p99.append(pct(direct_lat, .99))
        proxy_p99.append(pct(proxy_lat, .99))
        direct_p50.append(pct(direct_lat, .5))
        proxy_p50.append(pct(proxy_lat, .5))
    median = statistics.median
    print(f"\nfixed rate 5,000 msg/s, 10 conns x 100 B, {rounds} alternating rounds: p99 direct "
          f"{' '.join(f'{v:.2f}' for v in direct_p99)} ms, through proxy {' '.join(f'{v:.2f}' for v in proxy_p99)} ms; "
          f"added (medians) {median(proxy_p99) - median(direct_p99):.2f} ms (target <= 2 ms); "
          f"p50 added {median(proxy_p50) - median(direct_p50):.2f} ms")


def checker_cost(pool: ProcessPoolExecutor, procs: int, checked: tuple[subprocess.Popen, str],
                 unchecked: tuple[subprocess.Popen, str], seconds: float, rounds: int) -> None:
    """The live checker's cost: the same load through `record` and `record --no-check`, alternating."""
    totals = {"on": [0.0, 0.0], "off": [0.0, 0.0]}  # messages, CPU ms
    for _ in range(rounds):
        for name, (process, url) in (("on", checked), ("off", unchecked)):
            before = cpu_ms(process.pid)
            rate, _ = run_load(pool, procs, url, 10, 100, seconds)
            wait_idle(process.pid)
            totals[name][0] += rate * seconds
            totals[name][1] += cpu_ms(process.pid) - before
    per_k = {name: cpu / (messages / 1000) for name, (messages, cpu) in totals.items()}
    rate = {name: messages / (seconds * rounds) for name, (messages, _) in totals.items()}
    print(f"\nchecker cost, 10 conns x 100 B, {rounds} alternating rounds: checker on {rate['on']:,.0f} msg/s "
          f"{per_k['on']:.1f} ms CPU/1k; off (--no-check) {rate['off']:,.0f} msg/s {per_k['off']:.1f} ms CPU/1k; "
          f"extra CPU {100 * (per_k['on'] / per_k['off'] - 1):+.1f}% (target <= 15%), "
          f"throughput {rate['on'] / rate['off']:.2f} of unchecked")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each measurement")
    parser.add_argument("--load-procs", type=int, default=1, help="processes generating the load")
    parser.add_argument("--connections", default="1,10,100")
    parser.add_argument("--sizes", default="100,65536")
    parser.add_argument("--server", choices=("chat", "echo"), default="chat", help="the upstream")
    parser.add_argument("--cost-rounds", type=int, default=3, help="alternating rounds for the checker's cost")
    parser.add_argument("--latency-rounds", type=int, default=5, help="alternating rounds at a fixed rate")
    parser.add_argument("--soak", type=float, default=90.0, help="seconds of the 100-connection soak (0: skip)")
    args = parser.parse_args()
    echo_port, proxy_port = free_port(), free_port()
    tmp = Path(tempfile.mkdtemp(prefix="wsproxy-bench-"))
    upstream = Upstream(args.server, echo_port)
    upstream.restart()
    proxy = start_proxy(proxy_port, echo_port, tmp / "bench.duckdb")
    unchecked_port = free_port()
    unchecked = start_proxy(unchecked_port, echo_port, tmp / "unchecked.duckdb", "--no-check")
    time.sleep(0.5)
    direct_url, proxy_url = f"ws://127.0.0.1:{echo_port}", f"ws://127.0.0.1:{proxy_port}"
    print(f"upstream: {args.server} server")
    print(f"{'conns':>5} {'size':>7} | {'direct msg/s':>12} {'proxy msg/s':>12} {'ratio':>6} | "
          f"{'direct p50/p99 ms':>18} {'proxy p50/p99 ms':>18} | {'proxy CPU ms/1k':>15} {'catch-up s':>10}")
    try:
        with ProcessPoolExecutor(max_workers=args.load_procs) as pool:
            for connections in map(int, args.connections.split(",")):
                for size in map(int, args.sizes.split(",")):
                    upstream.restart()
                    direct_rate, direct_lat = run_load(pool, args.load_procs, direct_url, connections, size, args.seconds)
                    upstream.restart()
                    before = cpu_ms(proxy.pid)
                    proxy_rate, proxy_lat = run_load(pool, args.load_procs, proxy_url, connections, size, args.seconds)
                    catch_up = wait_idle(proxy.pid)
                    used = cpu_ms(proxy.pid) - before  # including the writer's catch-up
                    per_k = used / (proxy_rate * args.seconds / 1000) if proxy_rate else float("nan")
                    print(f"{connections:>5} {size:>7} | {direct_rate:>12,.0f} {proxy_rate:>12,.0f} "
                          f"{proxy_rate / direct_rate:>6.2f} | {pct(direct_lat, .5):>8.2f}/{pct(direct_lat, .99):<9.2f} "
                          f"{pct(proxy_lat, .5):>8.2f}/{pct(proxy_lat, .99):<9.2f} | {per_k:>15.1f} {catch_up:>10.2f}", flush=True)
            if args.latency_rounds:
                upstream.restart()
                fixed_rate_latency(pool, args.load_procs, direct_url, proxy_url, args.seconds + 1, args.latency_rounds)
            if args.cost_rounds:
                upstream.restart()
                checker_cost(pool, args.load_procs, (proxy, proxy_url), (unchecked, f"ws://127.0.0.1:{unchecked_port}"),
                             args.seconds, args.cost_rounds)
            if args.server == "echo":
                print("  (echo server: every echoed request comes back as a request from the server, a "
                      "wrong-direction finding per message; this measures a storm of findings, not clean traffic)")
            if args.soak:
                upstream.restart()
                soak(pool, args.load_procs, proxy_url, proxy.pid, args.soak)
        rss = peak_rss_mib(proxy.pid)
        stop_at = time.perf_counter()
        proxy.send_signal(signal.SIGINT)
        _, err = proxy.communicate(timeout=120)
        drain = time.perf_counter() - stop_at
        summary = next((json.loads(line) for line in err.splitlines() if '"summary"' in line), {})
        frames = summary.get("frames_client", 0) + summary.get("frames_server", 0)
        print(f"recorder: {summary.get('rows_written', 0):,} of {frames:,} frames written, "
              f"max writer lag {summary.get('max_writer_lag_ms', 'n/a')} ms, shutdown (final flush) {drain:.2f} s; "
              f"proxy peak RSS {rss:.0f} MiB")
    finally:
        for process in (proxy, unchecked):
            if process.poll() is None:
                process.kill()
            process.wait()
        upstream.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # gigabytes after the 64 KiB runs


if __name__ == "__main__":
    main()
