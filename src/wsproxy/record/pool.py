"""``record --workers N``: N recorder processes on one listening address, seen as one.

Each worker is ``wsproxy record`` itself, started with the hidden ``--worker`` option: it accepts on
the shared address (SO_REUSEPORT: the kernel spreads new connections over the workers), relays, checks
and records its own connections into its own segments of the recording folder, and reports on stderr
as JSON lines (``--log-format json``: listening, status every half second, findings, its summary).
This process starts them, reserves the port, numbers the session and the connections (each worker
takes every N-th id), passes their reports on, adds them up, and stops them all on Ctrl-C. A worker
that dies is reported; its segments stay readable, and the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from wsproxy.core.errors import UserError
from wsproxy.store.files import RecordingError
from wsproxy.store.folder import folder_stats

STATUS_SECONDS = 0.5  # how often a worker reports its counters
START_SECONDS = 60.0  # a worker that is not listening by then has failed to start
STOP_SECONDS = 60.0  # a worker still writing after this long is killed (its segment stays readable)


def reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process
    listening: bool = False
    status: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None
    reader: asyncio.Task | None = None


@dataclass
class WorkerPool:
    """Start with ``start()``; ``stop()`` returns every worker's summary (None for one that died)."""
    count: int
    host: str
    port: int
    db: Path
    args: list[str]  # the user's `record` options, passed on to each worker
    on_event: Callable[[int, dict[str, Any]], None] = lambda worker, event: None  # findings, warnings ...
    on_died: Callable[[int, str], None] = lambda worker, message: None
    workers: list[Worker] = field(default_factory=list)
    session_id: int = 0
    _reserved: socket.socket | None = None
    _stopping: bool = False

    async def start(self) -> None:
        if not reuse_port_supported():
            raise UserError("--workers needs SO_REUSEPORT, which this system lacks: record with one worker")
        self._reserve()
        if self.db.exists() and not self.db.is_dir():
            raise RecordingError(f"{self.db} is a file: --workers records into a folder; give a new --db path")
        last_session, conn_base = folder_stats(self.db)
        self.session_id = last_session + 1
        self.db.mkdir(parents=True, exist_ok=True)
        for index in range(self.count):
            spec = f"{index}/{self.count}/{self.session_id}/{conn_base}"
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "wsproxy", "record", *self.args, "--db", str(self.db),
                "--listen", f"{self.host}:{self.port}", "--log-format", "json", "--worker", spec,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                start_new_session=True)  # Ctrl-C at a terminal reaches this process only: it stops them in order
            worker = Worker(index, process)
            worker.reader = asyncio.create_task(self._read(worker), name=f"worker-{index}")
            self.workers.append(worker)
        try:
            async with asyncio.timeout(START_SECONDS):
                while not all(worker.listening for worker in self.workers):
                    failed = next((w for w in self.workers if w.process.returncode is not None), None)
                    if failed is not None:
                        raise RecordingError(f"worker {failed.index} could not start: "
                                             f"{failed.error or f'exit status {failed.process.returncode}'}")
                    await asyncio.sleep(0.05)
        except BaseException:
            await self.stop()
            raise

    def _reserve(self) -> None:
        """Bind the address (not listening: the kernel gives connections to listening sockets only), so
        that port 0 becomes one port for all workers and nobody else takes it meanwhile."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        reserved = socket.socket(family, socket.SOCK_STREAM)
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            reserved.bind((self.host, self.port))
        except OSError as exc:
            reserved.close()
            raise UserError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        self.port = reserved.getsockname()[1]
        self._reserved = reserved

    async def _read(self, worker: Worker) -> None:
        assert worker.process.stderr is not None
        async for line in worker.process.stderr:
            try:
                event = msgspec.json.decode(line)
            except msgspec.DecodeError:  # a worker's Python or a library wrote to stderr: pass it on
                self.on_event(worker.index, {"event": "warning",
                                             "message": f"worker {worker.index}: {line.decode(errors='replace').strip()}"})
                continue
            if not isinstance(event, dict):
                continue
            kind = event.get("event")
            if kind == "listening":
                worker.listening = True
            elif kind == "status":
                worker.status = _fields(event)
            elif kind == "summary":
                worker.summary = _fields(event)
            elif kind == "error":
                worker.error = str(event.get("message"))
            else:
                self.on_event(worker.index, event)
        code = await worker.process.wait()
        if worker.summary is None and worker.listening and not self._stopping:
            self.on_died(worker.index, f"worker {worker.index} (PID {worker.process.pid}) ended without stopping "
                                       f"({_exit_text(code)}{': ' + worker.error if worker.error else ''}); its "
                                       f"segments stay readable and the other workers go on")

    @property
    def alive(self) -> list[Worker]:
        return [worker for worker in self.workers if worker.process.returncode is None]

    async def stop(self) -> list[dict[str, Any] | None]:
        """Stop every worker (SIGTERM: each writes what it relayed and closes its segment)."""
        self._stopping = True
        for worker in self.alive:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                async with asyncio.timeout(STOP_SECONDS):
                    await worker.process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                await worker.process.wait()
            if worker.reader is not None:
                await worker.reader
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
        return [worker.summary for worker in self.workers]


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def parse_worker_spec(text: str) -> tuple[int, int, int, int]:
    """The hidden ``--worker INDEX/COUNT/SESSION/CONN_BASE`` a pool gives each worker."""
    try:
        index, count, session_id, conn_base = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--worker {text!r} is not INDEX/COUNT/SESSION/CONN_BASE (it is set by --workers)") from None
    if not 0 <= index < count:
        raise UserError(f"--worker {text!r}: the index must be below the count")
    return index, count, session_id, conn_base


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _fields(event: dict[str, Any]) -> dict[str, Any]:
    """A log line's fields without its own (the kind of line and when it was written)."""
    return {key: value for key, value in event.items() if key not in ("event", "ts")}
