"""K recorders writing one recording folder at once, then one query across all their segments: how
writing and reading scale with K (issue 26). Interleaved: every K in each round.

    .venv/bin/python benchmarks/bench_segments.py [--rows 200000] [--ks 1,2,4,8] [--rounds 3]

Each recorder is a process of its own that writes ``--rows`` realistic frame rows (the recorder's own
path: Arrow batches of 10,000, a commit each, its connection rows, a final checkpoint) into its own
segment, as `record --workers K` does; all K start together. Then, in this process, the folder is
opened as every command opens it (store.recording: each segment attached read-only, views over all)
and asked three questions: a count, frames per sender and type, and the exchanges view (requests
paired with their responses: a join and window functions over every segment). Prints per K: rows
written per second by all recorders together, the time to open the folder, and rows scanned per second
for each question.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from wsproxy.core.protocol import decode
from wsproxy.core.rows import ConnectionOpened, frame_row
from wsproxy.core.segments import SegmentName
from wsproxy.store.batches import insert_frames, insert_rows
from wsproxy.store.files import close_checkpoint, open_for_writing
from wsproxy.store.recording import open_recording

CONNECTIONS_PER_RECORDER = 100
BATCH = 10_000
QUESTIONS = {
    "count": "SELECT count(*) FROM frames",
    "per sender and type": "SELECT sender, msg_type, count(*) FROM frames GROUP BY ALL",
    "exchanges": "SELECT payload_type, count(*), count(response_seq), quantile_cont(latency_ms, 0.99) "
                 "FROM exchanges GROUP BY ALL",
}


def write_segment(folder: str, worker: int, workers: int, rows: int, start_at: float) -> float:
    """One recorder: ``rows`` frames of request/response/event into its segment; returns its seconds."""
    samples = []
    for sender, template in (
            ("client", '{{"type":"request","timestamp":1700000002.123,"id":"r{n}","payloadType":"new",'
                       '"payload":{{"chatId":"load0002","message":"message {n} from load0001"}}}}'),
            ("server", '{{"type":"response","timestamp":1700000002.124,"id":"r{n}","payload":{{"messageId":{n}}}}}'),
            ("server", '{{"type":"event","timestamp":1700000002.125,"id":{n},"eventType":"new","payload":'
                       '{{"messageId":{n},"chatId":"load0001","from":"load0001","message":"message {n}"}}}}')):
        samples.append((sender, template))
    conn_ids = [worker + 1 + i * workers for i in range(CONNECTIONS_PER_RECORDER)]
    base = time.time_ns() // 1000
    while time.time() < start_at:  # every recorder starts at once
        time.sleep(0.001)
    began = time.perf_counter()
    con = open_for_writing(Path(folder) / SegmentName(1, worker, 1).file_name)
    insert_rows(con, "connections", [ConnectionOpened(
        conn_id=c, session_id=1, opened_at=base, path="/chat", query=f"user=u{c}", client_addr=None, subprotocol=None,
        request_headers=None, response_headers=None, status=101, error=None) for c in conn_ids], ConnectionOpened)
    for offset in range(0, rows, BATCH):
        chunk = []
        for i in range(offset, min(offset + BATCH, rows)):
            n, kind = divmod(i, 3)
            sender, template = samples[kind]
            text = template.format(n=n)
            chunk.append(frame_row(conn_ids[n % len(conn_ids)], i, base + i, sender, "text", text,
                                   decode("text", text, sender)))
        con.execute("BEGIN TRANSACTION")
        insert_frames(con, chunk)
        con.execute("COMMIT")
    close_checkpoint(con)
    con.close()
    return time.perf_counter() - began


def one(k: int, rows: int, tmp: Path) -> dict[str, float]:
    folder = tmp / f"k{k}"
    folder.mkdir()
    start_at = time.time() + 1.0
    with ProcessPoolExecutor(max_workers=k) as pool:
        futures = [pool.submit(write_segment, str(folder), w, k, rows, start_at) for w in range(k)]
        for future in futures:
            future.result()
        wrote = time.time() - start_at  # from the common start to the last recorder's checkpoint
    figures = {"write_rows_per_s": k * rows / wrote}
    began = time.perf_counter()
    con = open_recording(folder)
    figures["open_ms"] = (time.perf_counter() - began) * 1000
    try:
        total = con.execute("SELECT count(*) FROM frames").fetchone()[0]  # also warms the OS cache
        assert total == k * rows, (total, k * rows)
        for name, sql in QUESTIONS.items():
            began = time.perf_counter()
            con.execute(sql).fetchall()
            figures[name] = total / (time.perf_counter() - began)
    finally:
        con.close()
    shutil.rmtree(folder)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="frame rows each recorder writes")
    parser.add_argument("--ks", default="1,2,4,8", help="numbers of recorders to compare")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="wsproxy-segments-"))
    runs: dict[int, list[dict[str, float]]] = {k: [] for k in ks}
    try:
        for number in range(args.rounds):
            for k in ks:  # interleaved: 1 2 4 8, 1 2 4 8, ...
                runs[k].append(one(k, args.rows, tmp))
                f = runs[k][-1]
                print(f"  round {number + 1} K={k}: wrote {f['write_rows_per_s']:,.0f} rows/s; opened in "
                      f"{f['open_ms']:.0f} ms; " + ", ".join(f"{q} {f[q] / 1e6:.1f}M rows/s" for q in QUESTIONS),
                      flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    median = statistics.median
    print(f"\n{args.rows:,} rows per recorder, medians of {args.rounds} rounds "
          f"({sys.platform}, {len(__import__('os').sched_getaffinity(0))} cores):")
    print(f"  {'K':>3} {'rows':>10} {'written/s':>11} {'open ms':>8} " + " ".join(f"{q + ' /s':>22}" for q in QUESTIONS))
    for k in ks:
        line = f"  {k:>3} {k * args.rows:>10,} {median(f['write_rows_per_s'] for f in runs[k]):>11,.0f} "
        line += f"{median(f['open_ms'] for f in runs[k]):>8.0f} "
        line += " ".join(f"{median(f[q] for f in runs[k]):>22,.0f}" for q in QUESTIONS)
        print(line)


if __name__ == "__main__":
    main()
