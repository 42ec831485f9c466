"""Decode speed of the protocol model against plain msgspec, side by side in one run.

    .venv/bin/python benchmarks/bench_decode.py [--seconds 2]

Prints messages/s for ``wsproxy.core.protocol.decode`` (envelope + payload validation +
single-message findings) and for ``msgspec.json.decode`` of the same bytes, and their
ratio. Target (issue 2): ratio >= 0.5.
"""

from __future__ import annotations

import argparse
import time

import msgspec

from wsproxy.core.protocol import decode

MIX: list[tuple[str, str]] = [
    # valid messages of every type, in the proportions of a chat session
    ("client", '{"type":"request","timestamp":1700000000,"id":"req001","payloadType":"subscribe","payload":{"lastEventId":1}}'),
    ("server", '{"type":"response","timestamp":1700000000,"id":"req001","payload":{"lastEventId":9,"count":8}}'),
    ("client", '{"type":"request","timestamp":1700000002,"id":"req002","payloadType":"new","payload":{"chatId":"User2","message":"Hi from User1!","attachments":[{"kind":"image","url":"https://example.org/cat.png"}]}}'),
    ("server", '{"type":"response","timestamp":1700000002,"id":"req002","payload":{"messageId":125}}'),
    ("server", '{"type":"event","timestamp":1700000002,"id":23,"eventType":"new","payload":{"messageId":125,"chatId":"User1","from":"User1","message":"Hi from User1!"}}'),
    ("client", '{"type":"request","timestamp":1700000003,"id":"req003","payloadType":"edit","payload":{"messageId":125,"message":"edited"}}'),
    ("server", '{"type":"response","timestamp":1700000003,"id":"req003","payload":{}}'),
    ("server", '{"type":"event","timestamp":1700000003,"id":24,"eventType":"edit","payload":{"messageId":125,"chatId":"User1","message":"edited"}}'),
    ("client", '{"type":"request","timestamp":1700000004,"id":"req004","payloadType":"delivered","payload":{"messageId":125}}'),
    ("server", '{"type":"event","timestamp":1700000004,"id":25,"eventType":"delivered","payload":{"messageId":125,"userId":"User2"}}'),
    ("client", '{"type":"request","timestamp":1700000005,"id":"req005","payloadType":"read","payload":{"messageId":125}}'),
    ("server", '{"type":"event","timestamp":1700000005,"id":26,"eventType":"read","payload":{"messageId":125,"userId":"User2"}}'),
    ("client", '{"type":"request","timestamp":1700000006,"id":"req006","payloadType":"delete","payload":{"messageId":125}}'),
    ("server", '{"type":"event","timestamp":1700000006,"id":27,"eventType":"delete","payload":{"messageId":125,"chatId":"User1"}}'),
    ("client", '{"type":"event","timestamp":1700000001,"eventType":"typing","payload":{"chatId":"User2"}}'),
    ("server", '{"type":"event","timestamp":1700000001,"eventType":"typing","payload":{"userId":"User1"}}'),
    ("server", '{"type":"event","timestamp":1700000001,"eventType":"online","payload":{"userId":"User1"}}'),
    ("server", '{"type":"event","timestamp":1700000001,"eventType":"offline","payload":{"userId":"User1"}}'),
    # invalid ones: about one in seven
    ("server", '{"type":"response","timestamp":1700000002,"id":"req002","payload":{"messageId":'),
    ("client", '{"type":"request","timestamp":1700000002,"payloadType":"new","payload":{}}'),
    ("client", '{"type":"request","timestamp":1700000002,"id":"r9","payloadType":"new","payload":{"chatId":5}}'),
    ("server", '{"type":"event","timestamp":1700000002000,"id":28,"eventType":"zap","payload":{}}'),
]


# How often each message occurs in the mix. A chat session is mostly events, requests
# and their responses; malformed traffic is rare (here about 2 in 100 messages) but
# present, and costs more to decode (an exception, then a second, diagnostic decode).
VALID_WEIGHT = 10
INVALID_WEIGHT = 1
VALID, INVALID = MIX[:18], MIX[18:]


def measure_plain(batch: list[tuple[str, bytes]], seconds: float) -> float:
    plain_decode, error = msgspec.json.decode, msgspec.DecodeError
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _, data in batch:
            try:
                plain_decode(data)
            except error:
                pass
        count += len(batch)
    return count / (time.perf_counter() - start)


def measure_wsproxy(batch: list[tuple[str, bytes]], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for sender, data in batch:
            decode("text", data, sender)
        count += len(batch)
    return count / (time.perf_counter() - start)


def compare(batch: list[tuple[str, bytes]], seconds: float) -> tuple[float, float]:
    """Best of 3 interleaved rounds each, so noise from other processes hits both alike."""
    plain_rates, our_rates = [], []
    for _ in range(3):
        plain_rates.append(measure_plain(batch, seconds / 6))
        our_rates.append(measure_wsproxy(batch, seconds / 6))
    return max(plain_rates), max(our_rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per comparison")
    args = parser.parse_args()
    encode = lambda items: [(sender, text.encode()) for sender, text in items]  # noqa: E731
    mix = encode(VALID) * VALID_WEIGHT + encode(INVALID) * INVALID_WEIGHT
    flagged = sum(1 for sender, data in mix if decode("text", data, sender).findings)
    print(f"mix: {len(mix)} messages, {flagged} with findings "
          f"(invalid JSON, invalid envelope, payload schema, ms timestamp + unknown type)")
    print(f"{'batch':<14}{'plain msgspec/s':>18}{'wsproxy decode/s':>18}{'ratio':>8}")
    for name, batch in (("realistic mix", mix), ("valid only", encode(VALID)), ("invalid only", encode(INVALID))):
        plain, ours = compare(batch, args.seconds)
        print(f"{name:<14}{plain:>18,.0f}{ours:>18,.0f}{ours / plain:>8.2f}")
    print("target: ratio >= 0.50 on the realistic mix")


if __name__ == "__main__":
    main()
