"""What `wsproxy record` costs the traffic it relays, against a direct connection, a bare relay and
itself without the checker: every comparison in one run, interleaved A B C D A B C D, as ratios.

    .venv/bin/python benchmarks/bench_record.py [--rounds 3] [--seconds 3] [--quick]

Everything runs in its own process: the reference chat server (restarted before every measurement: it
keeps every message), the proxy under measure (restarted too, on a fresh recording), and the load
(benchmarks/loadgen.py: protocol.md exactly, each request answered by a response and a stateful event).
The paths compared:

  direct   the load talks to the chat server
  bare     through benchmarks/bare_relay.py: aiohttp, two pump tasks, nothing recorded (the reference)
  record   through `wsproxy record` (the standard asyncio event loop, its default)
  uvloop   through `wsproxy record --loop uvloop` (when uvloop is installed)
  nocheck  through `wsproxy record --no-check`
  workers2 through `wsproxy record --workers 2` (a folder of segments; CPU is the pool's and its
           workers' together; on 2 cores the load generator competes with them: see docs/performance.md)
  inject   through `wsproxy record --inject RULE` with one rule that every message is matched against
           and none fires (`--skip inject` leaves it out; `--inject-rule` picks another)
  intercept through `wsproxy record --ui 127.0.0.1:0 --intercept RULE` with one breakpoint that every
           message is matched against and none holds (`--intercept-rule` picks another): the cost of
           an idle breakpoint (hands on the wire, docs/ui.md)
  spec     through `wsproxy record --spec FILE`: every message checked against an AsyncAPI 3 document too
           (`--spec-file`, default docs/chat-protocol.asyncapi.yaml, which the load's messages match): the
           cost of --spec over the built-in checker alone (issue 28: at most 1.25x record's CPU)
  baseline through `wsproxy record` of another source tree (`--baseline-src DIR`: e.g. a git worktree of
           an older commit), to measure what a change costs the path that does not use it
  mitmproxy through `mitmdump --mode reverse:... -w FILE` (mitmproxy's recorder), where `--mitmdump`
           names it or `mitmdump` is on PATH (`pip install mitmproxy` into a venv of its own)

`--paths direct,bare,record` picks the paths.

Prints, per scenario and round, messages/s and the proxy's CPU ms per 1,000 messages, then the median
ratio of each path to direct (and record to bare, record to nocheck); then latency at a fixed
5,000 messages/s (and with `--rotate 2s`: during a rotation against between rotations), and the
proxy's memory per idle connection at 0, 1,000 and 10,000 connections.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import loadgen

BARE_RELAY = Path(__file__).parent / "bare_relay.py"
MITMDUMP = shutil.which("mitmdump") or ""
CONNECTIONS = 10
INJECT_RULE = "delay=1ms event type=typing"
INTERCEPT_RULE = "to-server type=never-sent"
BASELINE_SRC = ""
SPEC_FILE = str(Path(__file__).parent.parent / "docs" / "chat-protocol.asyncapi.yaml")
ROTATE_SECONDS = 2  # the rotation scenario: `record --rotate 2s`
DURING_ROTATION = 1.0  # seconds after a new segment appears that count as "during a rotation"
# Issue 25's targets, per message size: (path, against, what, target); throughput at least the target
# times the other path's, CPU per message at most the target times its; 0: shown, no target.
Target = tuple[str, str, str, float]
TARGETS: dict[int, list[Target]] = {
    100: [("record", "bare", "throughput", 0.75), ("record", "bare", "CPU", 1.6), ("inject", "record", "throughput", 0),
          ("spec", "record", "CPU", 1.25), ("spec", "record", "throughput", 0),
          ("intercept", "record", "throughput", 0), ("intercept", "record", "CPU", 0),
          ("record", "baseline", "throughput", 0), ("record", "baseline", "CPU", 0),
          ("workers2", "record", "throughput", 0), ("workers2", "record", "CPU", 0)],
    4096: [("record", "bare", "throughput", 0), ("record", "bare", "CPU", 0)],
    65536: [("record", "bare", "throughput", 0.50), ("record", "bare", "CPU", 2.5), ("record", "bare", "p99", 2.0),
            ("spec", "record", "CPU", 1.25), ("spec", "record", "throughput", 0),
            ("record", "mitmproxy", "throughput", 5.0), ("workers2", "record", "throughput", 0),
            ("intercept", "record", "throughput", 0), ("intercept", "record", "CPU", 0),
            ("record", "baseline", "throughput", 0), ("record", "baseline", "CPU", 0),
            ("workers2", "record", "CPU", 0)],
}
WINDOW = 32  # requests in flight per connection


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def more_files() -> None:
    """Room for 10,000 idle connections (two sockets each in a proxy): raise the open-file limit."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))
    except (ValueError, OSError):
        pass


def wait_listening(port: int, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{what} did not start on port {port}") from None
            time.sleep(0.05)


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_ms(pid: int) -> float:
    """CPU of ``pid`` and of its live descendants (`record --workers`: the pool and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, IndexError):
                continue
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = _stat(current)
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
        todo += children.get(current, [])
    return total


def rss_mib(pid: int, field: str = "VmRSS:") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_idle(pid: int, timeout: float = 60.0) -> float:
    """Seconds until the process's CPU goes quiet after a load (its writer has caught up)."""
    start, last = time.perf_counter(), cpu_ms(pid)
    while time.perf_counter() - start < timeout:
        time.sleep(0.1)
        now = cpu_ms(pid)
        if now - last < 5:
            return time.perf_counter() - start - 0.1
        last = now
    return float("inf")


class Rig:
    """The chat server and the path under measure, each in its own process, started fresh."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.upstream_port = free_port()
        self.server: subprocess.Popen | None = None
        self.proxy: subprocess.Popen | None = None
        self.runs = 0
        self.db = tmp

    def start(self, path: str) -> str:
        """Start the chat server and ``path``'s proxy; returns the URL the load connects to."""
        self.stop()
        self.server = subprocess.Popen([sys.executable, "-m", "wsproxy", "chat-server", "--port",
                                        str(self.upstream_port)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, preexec_fn=more_files)
        wait_listening(self.upstream_port, self.server, "the chat server")
        upstream = f"ws://127.0.0.1:{self.upstream_port}"
        if path == "direct":
            return upstream
        port = free_port()
        if path == "bare":
            command = [sys.executable, str(BARE_RELAY), str(port), upstream]
        elif path == "mitmproxy":
            self.runs += 1
            command = [MITMDUMP, "--mode", f"reverse:http://127.0.0.1:{self.upstream_port}", "--listen-host",
                       "127.0.0.1", "-p", str(port), "-q", "-w", str(self.tmp / f"run{self.runs}.mitm")]
        else:
            self.runs += 1
            extra = {"record": [], "uvloop": ["--event-loop", "uvloop"], "nocheck": ["--no-check"],
                     "inject": ["--inject", INJECT_RULE], "workers2": ["--workers", "2"], "baseline": [],
                     "intercept": ["--ui", "127.0.0.1:0", "--intercept", INTERCEPT_RULE],
                     "spec": ["--spec", SPEC_FILE],
                     "rotate": ["--rotate", f"{ROTATE_SECONDS}s"]}[path]
            self.db = self.tmp / (f"run{self.runs}" if path in ("workers2", "rotate") else f"run{self.runs}.duckdb")
            db = self.db
            command = [sys.executable, "-m", "wsproxy", "record", "--listen", f"127.0.0.1:{port}", "--upstream",
                       upstream, "--db", str(db), "--log-format", "json",
                       "--max-message-size", str(1 << 20), *extra]
        env = {**os.environ, "PYTHONPATH": BASELINE_SRC} if path == "baseline" else None
        self.proxy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                      preexec_fn=more_files, env=env)
        wait_listening(port, self.proxy, path)
        return f"ws://127.0.0.1:{port}"

    def stop(self) -> dict:
        """Stop both; for `wsproxy record`, its JSON summary (writer lag, rows written)."""
        summary: dict = {}
        if self.proxy is not None:
            self.proxy.send_signal(signal.SIGINT)
            try:
                _, err = self.proxy.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                self.proxy.kill()
                _, err = self.proxy.communicate()
            summary = next((json.loads(line) for line in (err or "").splitlines() if '"summary"' in line), {})
            self.proxy = None
        if self.server is not None:
            self.server.kill()
            self.server.wait()
            self.server = None
        for old in self.tmp.glob("run*"):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        return summary


def load(pool: ProcessPoolExecutor, procs: int, url: str, size: int, seconds: float, traffic: str,
         rate: float | None = None) -> tuple[float, loadgen.Result]:
    shares = [CONNECTIONS // procs + (1 if i < CONNECTIONS % procs else 0) for i in range(procs)]
    firsts = [sum(shares[:i]) for i in range(procs)]
    start = time.perf_counter()
    futures = [pool.submit(loadgen.run, url, first, share, CONNECTIONS, size, seconds, WINDOW, rate, traffic)
               for first, share in zip(firsts, shares) if share]
    results = [f.result() for f in futures]
    elapsed = time.perf_counter() - start - 0.3  # the subscribe pause
    total = loadgen.Result()
    for result in results:
        total.messages += result.messages
        total.requests += result.requests
        total.latencies += result.latencies
        total.answered_at += result.answered_at
        total.errors += result.errors
    return total.messages / max(elapsed, seconds), total


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")


def measure(rig: Rig, pool: ProcessPoolExecutor, args: argparse.Namespace, path: str, size: int,
            traffic: str) -> dict:
    url = rig.start(path)
    pid = rig.proxy.pid if rig.proxy is not None else None
    before = cpu_ms(pid) if pid else 0.0
    rate, result = load(pool, args.load_procs, url, size, args.seconds, traffic)
    figures = {"rate": rate, "errors": result.errors, "p99": pct(result.latencies, .99)}
    if pid:
        figures["catch_up"] = wait_idle(pid)
        figures["cpu_per_k"] = (cpu_ms(pid) - before) / (rate * args.seconds / 1000)
        figures["rss"] = rss_mib(pid, "VmHWM:")
    summary = rig.stop()
    if summary:
        figures["lag_ms"] = summary.get("max_writer_lag_ms")
        frames = summary.get("frames_client", 0) + summary.get("frames_server", 0)
        figures["lost"] = max(0, frames - summary.get("rows_written", 0))  # rows also hold closes and pings
    return figures


def scenario(rig: Rig, pool: ProcessPoolExecutor, args: argparse.Namespace, paths: list[str], size: int,
             traffic: str) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {path: [] for path in paths}
    print(f"\n{traffic} traffic, {CONNECTIONS} connections x {size:,} B, {WINDOW} requests in flight each:")
    for number in range(args.rounds):
        line = []
        # interleaved, every other round backwards (A B C, C B A, ...): in an A/A run (the same code
        # twice, 64 KiB) the one measured second in a round was faster in 5 rounds of 6, by 2-25 %
        for path in paths if number % 2 == 0 else paths[::-1]:
            figures = measure(rig, pool, args, path, size, traffic)
            runs[path].append(figures)
            extra = (f" {figures['cpu_per_k']:.1f} ms CPU/1k, lag {figures.get('lag_ms')} ms, RSS {figures['rss']:.0f} MiB"
                     if "cpu_per_k" in figures else "")
            line.append(f"{path} {figures['rate']:,.0f}/s{extra}" + (f" ({figures['errors']} errors)" if figures["errors"] else ""))
        print(f"  round {number + 1}: " + "; ".join(line), flush=True)
    return runs


def ratio(runs: dict[str, list[dict]], a: str, b: str) -> float:
    return statistics.median(x["rate"] / y["rate"] for x, y in zip(runs[a], runs[b]))


def report(runs: dict[str, list[dict]], targets: list[Target]) -> None:
    """The scenario as a table (medians over the rounds; ratios are medians of per-round ratios), then
    the targets that apply to it."""
    median = statistics.median
    base = "bare" if "bare" in runs else None
    print(f"  {'path':10} {'msgs/s':>9} {'/ bare':>7} {'CPU ms/1k':>10} {'x bare':>7} {'p99 ms':>8} {'x bare':>7} "
          f"{'lag max':>8} {'RSS max':>8} {'lost':>5}")
    for path, figures in runs.items():
        if not figures:
            continue
        cpu = median(f["cpu_per_k"] for f in figures) if "cpu_per_k" in figures[0] else None
        line = f"  {path:10} {median(f['rate'] for f in figures):9,.0f} "
        line += f"{ratio(runs, path, base):7.2f} " if base else f"{'':7} "
        line += f"{cpu:10.1f} " if cpu is not None else f"{'-':>10} "
        if base and cpu is not None and "cpu_per_k" in runs[base][0]:
            line += f"{median(f['cpu_per_k'] / b['cpu_per_k'] for f, b in zip(figures, runs[base])):7.2f} "
        else:
            line += f"{'':7} "
        line += f"{median(f['p99'] for f in figures):8.1f} "
        line += f"{median(f['p99'] / b['p99'] for f, b in zip(figures, runs[base])):7.2f} " if base else f"{'':7} "
        lag = max((f.get("lag_ms") or 0) for f in figures)
        line += f"{lag:6.0f}ms " if "lag_ms" in figures[0] else f"{'-':>8} "
        line += f"{max(f['rss'] for f in figures):5.0f}MiB " if "rss" in figures[0] else f"{'-':>8} "
        line += f"{sum(f.get('lost') or 0 for f in figures):5}" if "lost" in figures[0] else f"{'-':>5}"
        print(line)
    key = {"throughput": "rate", "CPU": "cpu_per_k", "p99": "p99"}
    for a, b, what, target in targets:
        if a in runs and b in runs and all(key[what] in f for f in runs[a] + runs[b]):
            value = median(x[key[what]] / y[key[what]] for x, y in zip(runs[a], runs[b]))
            higher_is_better = what == "throughput"
            met = value >= target if higher_is_better else value <= target
            verdict = f" (target {'>=' if higher_is_better else '<='} {target:.2f}: {'met' if met else 'NOT met'})"
            print(f"  {what} {a} / {b}: {value:.2f}" + (verdict if target else ""))


def fixed_rate(rig: Rig, pool: ProcessPoolExecutor, args: argparse.Namespace) -> None:
    """Response latency at 5,000 messages/s (10 connections x 167 requests/s, 3 messages each), direct,
    through the bare relay and through `wsproxy record` (and the baseline, when --paths names it), alternating."""
    per_connection = 5000 / 3 / CONNECTIONS
    paths = ("direct", "bare", "record", *(["baseline"] if "baseline" in args.paths.split(",") else []))
    p99: dict[str, list[float]] = {path: [] for path in paths}
    worst: dict[str, list[float]] = {path: [] for path in paths}
    stalls = dict.fromkeys(paths, 0)
    for number in range(args.rounds):
        for path in paths if number % 2 == 0 else paths[::-1]:  # A B C, C B A, ... as in scenario()
            url = rig.start(path)
            _, result = load(pool, args.load_procs, url, 100, args.seconds + 2, "clean", rate=per_connection)
            rig.stop()
            p99[path].append(pct(result.latencies, .99))
            worst[path].append(max(result.latencies, default=0) * 1000)
            stalls[path] += sum(1 for lat in result.latencies if lat > 0.020)
    median = statistics.median
    print(f"\nfixed rate 5,000 msg/s, {CONNECTIONS} conns x 100 B, {args.rounds} alternating rounds "
          f"(response round trips):")
    for path in paths:
        print(f"  {path:7} p99 {' '.join(f'{v:.2f}' for v in p99[path])} ms; slowest "
              f"{' '.join(f'{v:.1f}' for v in worst[path])} ms; responses over 20 ms: {stalls[path]}")
    over = median(p99["record"]) - median(p99["bare"])
    print(f"  p99 added over direct: by the bare relay {median(p99['bare']) - median(p99['direct']):.2f} ms, by record "
          f"{median(p99['record']) - median(p99['direct']):.2f} ms; record over the bare relay {over:.2f} ms "
          f"(target <= 1 ms: {'met' if over <= 1 else 'NOT met'})")
    if "baseline" in p99:
        print(f"  baseline over the bare relay {median(p99['baseline']) - median(p99['bare']):.2f} ms")


def rotation(rig: Rig, pool: ProcessPoolExecutor, args: argparse.Namespace) -> None:
    """Response latency at 5,000 messages/s through `record` and `record --rotate 2s`, alternating; for
    the rotating one, the responses in the second after each new segment appeared against the rest."""
    import threading
    per_connection = 5000 / 3 / CONNECTIONS
    seconds = max(args.seconds, 3 * ROTATE_SECONDS) + 2
    p99: dict[str, list[float]] = {"record": [], "rotate between": [], "rotate during": []}
    rotations = 0
    for _ in range(args.rounds):
        for path in ("record", "rotate"):
            url = rig.start(path)
            appeared: dict[str, float] = {}
            watching = threading.Event()

            def watch(folder: Path = rig.db) -> None:
                while not watching.is_set():  # when each segment file appears (10 ms resolution)
                    for file in folder.glob("*.duckdb") if folder.is_dir() else ():
                        appeared.setdefault(file.name, time.time())
                    time.sleep(0.01)
            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            _, result = load(pool, args.load_procs, url, 100, seconds, "clean", rate=per_connection)
            watching.set()
            watcher.join()
            rig.stop()
            if path == "record":
                p99["record"].append(pct(result.latencies, .99))
                continue
            starts = sorted(appeared.values())[1:]  # the first segment is the start, not a rotation
            rotations += len(starts)
            during = [lat for lat, at in zip(result.latencies, result.answered_at, strict=True)
                      if any(0 <= at - t < DURING_ROTATION for t in starts)]
            between = [lat for lat, at in zip(result.latencies, result.answered_at, strict=True)
                       if not any(0 <= at - t < DURING_ROTATION for t in starts)]
            p99["rotate during"].append(pct(during, .99))
            p99["rotate between"].append(pct(between, .99))
    median = statistics.median
    print(f"\nrotation: 5,000 msg/s, {CONNECTIONS} conns x 100 B, `record --rotate {ROTATE_SECONDS}s` against `record`, "
          f"{args.rounds} alternating rounds, {rotations} rotations in all (during = the {DURING_ROTATION:.0f} s after a "
          f"new segment appeared):")
    for name, values in p99.items():
        print(f"  {name:15} p99 {' '.join(f'{v:.2f}' for v in values)} ms (median {median(values):.2f})")
    print(f"  p99 added during a rotation over between rotations: "
          f"{median(p99['rotate during']) - median(p99['rotate between']):.2f} ms")


def idle_memory(rig: Rig, pool: ProcessPoolExecutor, counts: list[int]) -> None:
    """The proxy's RSS with 0, 1,000 and 10,000 idle (subscribed) connections open through it."""
    url = rig.start("record")
    pid = rig.proxy.pid
    time.sleep(1.0)
    base = rss_mib(pid)
    print(f"\nidle connections through `wsproxy record` (RSS {base:.1f} MiB with none):")
    for count in counts:
        future = pool.submit(loadgen.hold_idle, url, count, 8.0 + count / 500)
        peak = base
        while not future.done():
            time.sleep(0.5)
            peak = max(peak, rss_mib(pid))
        opened, problem = future.result()
        print(f"  {opened:,} idle" + (f" ({count - opened} refused: {problem})" if problem else "") + f": RSS {peak:.1f} MiB, {(peak - base) * 1024 / max(opened, 1):.1f} KiB per connection "
              f"(target <= 64 KiB)")
        time.sleep(2.0)
    rig.stop()


def main() -> None:
    global INJECT_RULE, MITMDUMP, INTERCEPT_RULE, BASELINE_SRC, SPEC_FILE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario (>= 3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    parser.add_argument("--load-procs", type=int, default=1, help="processes generating the load")
    parser.add_argument("--sizes", default="100,4096,65536")
    parser.add_argument("--skip", default="", help="comma-separated: clean, findings, latency, rotation, idle")
    parser.add_argument("--idle", default="1000,10000", help="idle connection counts")
    parser.add_argument("--paths", default="", help="comma-separated paths to compare (default: all there are)")
    parser.add_argument("--mitmdump", default=shutil.which("mitmdump") or "", help="mitmproxy's mitmdump, for the mitmproxy path")
    parser.add_argument("--inject-rule", default="delay=1ms event type=typing",
                        help="the rule of the inject path (the load sends no typing: it is checked, never fires)")
    parser.add_argument("--intercept-rule", default="to-server type=never-sent",
                        help="the breakpoint of the intercept path (the load sends no such message: it never holds)")
    parser.add_argument("--spec-file", default=SPEC_FILE, help="the AsyncAPI document of the spec path")
    parser.add_argument("--baseline-src", default="", help="the src/ folder of another wsproxy, for the baseline path")
    args = parser.parse_args()
    INJECT_RULE, MITMDUMP, INTERCEPT_RULE = args.inject_rule, args.mitmdump, args.intercept_rule
    SPEC_FILE = str(Path(args.spec_file).resolve())
    BASELINE_SRC = str(Path(args.baseline_src).resolve()) if args.baseline_src else ""
    if "baseline" in args.paths.split(",") and not BASELINE_SRC:
        parser.error("the baseline path needs --baseline-src DIR (the src/ folder of the wsproxy to compare with)")
    more_files()
    skip = set(filter(None, args.skip.split(",")))
    try:
        import uvloop  # noqa: F401
        paths = ["direct", "bare", "record", "uvloop", "nocheck"]
    except ImportError:
        paths = ["direct", "bare", "record", "nocheck"]
    if "inject" not in skip:
        paths.append("inject")
    if MITMDUMP:
        paths.append("mitmproxy")
    if args.paths:
        paths = args.paths.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="wsproxy-bench-"))
    rig = Rig(tmp)
    try:
        with ProcessPoolExecutor(max_workers=max(args.load_procs, 1)) as pool:
            if "clean" not in skip:
                for size in map(int, args.sizes.split(",")):
                    runs = scenario(rig, pool, args, paths, size, "clean")
                    report(runs, TARGETS.get(size, [("record", "bare", "throughput", 0)]))
            if "findings" not in skip:
                runs = scenario(rig, pool, args, ["record", "nocheck"], 100, "findings")
                report(runs, [("record", "nocheck", "throughput", 0.85)])
            if "latency" not in skip:
                fixed_rate(rig, pool, args)
            if "rotation" not in skip:
                rotation(rig, pool, args)
            if "idle" not in skip:
                idle_memory(rig, pool, [int(n) for n in args.idle.split(",")])
    finally:
        rig.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
