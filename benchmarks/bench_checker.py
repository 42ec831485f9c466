"""The pure checker's own cost per message, against decoding alone, in one run.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_checker.py [--connections 50] [--rounds 200]

Traffic: per connection a subscribe, then rounds of (new request, response, stateful event with the
next id, typing event) — a realistic clean mix where every rule is evaluated and none fires.
"""

from __future__ import annotations

import argparse
import time

import msgspec

from wsproxy.core.checker import Checker
from wsproxy.core.protocol import decode


def traffic(connections: int, rounds: int) -> list[tuple[int, int, int, str, str]]:
    encode = msgspec.json.encode
    frames = []
    t = 1_700_000_000_000_000
    for conn in range(1, connections + 1):
        seq = 0

        def add(sender: str, body: dict) -> None:
            nonlocal seq, t
            seq += 1
            t += 50
            frames.append((conn, seq, t, sender, encode(body).decode()))
        add("client", {"type": "request", "timestamp": 1700000000.0, "id": "s", "payloadType": "subscribe", "payload": {}})
        add("server", {"type": "response", "timestamp": 1700000000.0, "id": "s", "payload": {"lastEventId": 0, "count": 0}})
        for n in range(rounds):
            stamp = 1700000000.0 + n / 100
            add("client", {"type": "request", "timestamp": stamp, "id": f"r{n}", "payloadType": "new",
                           "payload": {"chatId": "peer", "message": f"message {n}"}})
            add("server", {"type": "response", "timestamp": stamp, "id": f"r{n}", "payload": {"messageId": n}})
            add("server", {"type": "event", "timestamp": stamp, "id": n + 1, "eventType": "new",
                           "payload": {"messageId": n, "chatId": "peer", "from": "peer", "message": "hi"}})
            add("server", {"type": "event", "timestamp": stamp, "eventType": "typing", "payload": {"userId": "peer"}})
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    frames = traffic(args.connections, args.rounds)
    parsed = [(conn, seq, t, sender, decode("text", text, sender)) for conn, seq, t, sender, text in frames]
    best = {"decode": float("inf"), "check": float("inf")}
    for _ in range(5):
        start = time.perf_counter()
        for _conn, _seq, _t, sender, text in frames:
            decode("text", text, sender)
        best["decode"] = min(best["decode"], time.perf_counter() - start)
        checker = Checker()
        start = time.perf_counter()
        message = checker.message
        findings = 0
        for conn, seq, t, sender, p in parsed:
            findings += len(message(conn, seq, t, sender, p))
        best["check"] = min(best["check"], time.perf_counter() - start)
        assert findings == 0, "clean traffic must give no finding"
    n = len(frames)
    print(f"{n:,} messages over {args.connections} connections (best of 5)")
    print(f"decode alone      {best['decode'] / n * 1e6:6.2f} µs/message  {n / best['decode']:>12,.0f} msg/s")
    print(f"checker alone     {best['check'] / n * 1e6:6.2f} µs/message  {n / best['check']:>12,.0f} msg/s")
    print(f"checker / decode  {best['check'] / best['decode']:.2f}")


if __name__ == "__main__":
    main()
