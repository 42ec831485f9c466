"""A large, realistic recording for the UI benchmark (and for trying the UI by hand).

    .venv/bin/python benchmarks/big_recording.py /tmp/big.duckdb [--frames 1000000] [--connections 10]

Each connection subscribes, then runs rounds of (new request, its response, a stateful event with
the next id, a typing event). A few faults are mixed in, so the findings are real ones of the
checker: every 997th event skips an id, every 4999th request is never answered. The frames go
through the recorder's own writer (core.rows.frame_row, record.writer.Recorder) and the findings
through the checker, as ``wsproxy record`` would write them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import msgspec

from wsproxy.core.checker import Checker
from wsproxy.core.profile import CHAT_PROFILE
from wsproxy.core.protocol import MessageDecoder
from wsproxy.core.rows import ConnectionOpened, frame_row, violation_row
from wsproxy.record.writer import Recorder

START_US = 1_767_000_000_000_000
STEP_US = 400  # between two frames of one connection


def build(path: Path, frames: int = 1_000_000, connections: int = 10) -> None:
    path.unlink(missing_ok=True)
    recorder = Recorder(path)
    session_id = recorder.start(label="big", listen="127.0.0.1:8080", upstream="ws://127.0.0.1:8765", redacted=True)
    checker = Checker(CHAT_PROFILE)
    decode = MessageDecoder(CHAT_PROFILE).decode
    encode = msgspec.json.encode
    per_connection = frames // connections
    for n in range(connections):
        conn_id = recorder.new_conn_id()
        t = START_US + n * 1000
        recorder.connection_opened(ConnectionOpened(
            conn_id=conn_id, session_id=session_id, opened_at=t, path="/chat", query=f"user=user{n}",
            client_addr="127.0.0.1:5000", subprotocol=None, request_headers="[]", response_headers="[]", status=101,
            error=None))
        checker.open(conn_id, t)
        seq = 0

        def add(sender: str, body: dict, conn_id: int = conn_id) -> None:
            nonlocal seq, t
            seq += 1
            t += STEP_US
            text = encode(body).decode()
            parsed = decode("text", text, sender)
            recorder.add_frame(frame_row(conn_id, seq, t, sender, "text", text, parsed))
            for finding in checker.message(conn_id, seq, t, sender, parsed):
                recorder.add_violation(violation_row(session_id, finding))
        add("client", {"type": "request", "timestamp": t / 1e6, "id": "s", "payloadType": "subscribe", "payload": {}})
        add("server", {"type": "response", "timestamp": t / 1e6, "id": "s", "payload": {"lastEventId": 0, "count": 0}})
        event_id = 0
        for r in range((per_connection - 2) // 4):
            stamp = t / 1e6
            request_id = f"u{n}-{r}"
            add("client", {"type": "request", "timestamp": stamp, "id": request_id, "payloadType": "new",
                           "payload": {"chatId": f"user{(n + 1) % connections}", "message": f"message {r} from user{n}"}})
            if r % 4999 != 4998:
                add("server", {"type": "response", "timestamp": stamp, "id": request_id, "payload": {"messageId": r}})
            event_id += 2 if r % 997 == 996 else 1
            add("server", {"type": "event", "timestamp": stamp, "id": event_id, "eventType": "new",
                           "payload": {"messageId": r, "chatId": f"user{n}", "from": f"user{(n + 1) % connections}",
                                       "message": f"reply {r} to user{n}"}})
            add("server", {"type": "event", "timestamp": stamp, "eventType": "typing",
                           "payload": {"userId": f"user{(n + 1) % connections}"}})
        recorder.connection_closed(conn_id, 1000, "", "client", closed_at_us=t + STEP_US)
        for finding in checker.close(conn_id, t + STEP_US):
            recorder.add_violation(violation_row(session_id, finding))
    recorder.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db", type=Path)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=10)
    args = parser.parse_args()
    started = time.perf_counter()
    build(args.db, args.frames, args.connections)
    print(f"{args.db}: {args.frames:,} frames in {args.connections} connections, "
          f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
