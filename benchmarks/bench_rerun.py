"""How much traffic `wsproxy rerun --copies N` makes from one recording, on this machine.

    .venv/bin/python benchmarks/bench_rerun.py [--copies 1,10,20,50,100] [--rounds 3]

Records the overview flow once (3 connections, 41 messages) through `wsproxy record`, then reruns it
with each --copies value in turn, interleaved round by round (1 10 20 … 1 10 20 …), every time against
a freshly started reference chat server in its own process (--vary query:user keeps the copies'
users apart). The rerun itself runs as the `wsproxy rerun` command, in its own process: its clients,
its recording proxy and its writer. Prints messages/s (client and server messages through the rerun's
proxy), the differences found (there should be none) and the median request->response latency.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chat_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "wsproxy", "chat-server", "--port", str(port),
                                "--message-id-base", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return process, f"ws://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the chat server did not start")


def record_flow(db: Path) -> None:
    server, url = chat_server()
    port = free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "wsproxy", "record", "--upstream", url, "--listen",
                              f"127.0.0.1:{port}", "--db", str(db), "--quiet"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        subprocess.run([sys.executable, "-m", "wsproxy", "chat-client", f"ws://127.0.0.1:{port}"], check=True,
                       capture_output=True)
    finally:
        proxy.send_signal(2)
        proxy.wait(30)
        server.terminate()
        server.wait(10)


def rerun(db: Path, copies: int) -> dict:
    server, url = chat_server()
    try:
        result = subprocess.run([sys.executable, "-m", "wsproxy", "rerun", str(db), "--session", "1", "--upstream",
                                 url, "--copies", str(copies), "--vary", "query:user", "--format", "json", "-q"],
                                capture_output=True, text=True, timeout=600)
    finally:
        server.terminate()
        server.wait(10)
    if result.returncode not in (0, 1):
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", default="1,10,20,50,100")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    counts = [int(c) for c in args.copies.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "flow.duckdb"
        record_flow(db)
        results: dict[int, list[dict]] = {n: [] for n in counts}
        for round_ in range(1, args.rounds + 1):
            for n in counts:
                report = rerun(db, n)
                results[n].append(report)
                new = report["latency"].get("new", {}).get("rerun", {})
                print(f"round {round_}: --copies {n:>3}: {report['messages']:>6,} messages in "
                      f"{report['elapsed_seconds']:6.2f} s = {report['messages_per_second']:>8,.0f} msg/s; "
                      f"differences {report['differences']}; new p50 {new.get('p50_ms', 0):.1f} ms", flush=True)
        print("\nmedians:")
        for n in counts:
            rates = [r["messages_per_second"] for r in results[n]]
            diffs = sum(r["differences"] for r in results[n])
            print(f"  --copies {n:>3}: {statistics.median(rates):>8,.0f} msg/s "
                  f"({results[n][0]['messages']:,} messages a run), differences in all rounds: {diffs}")


if __name__ == "__main__":
    main()
