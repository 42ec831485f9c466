"""``wsproxy record --workers N``: the pool of recorders (``record.pool``) shown as one recorder; and
where --workers, --rotate and --keep say to record."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from rich.text import Text

from wsproxy.cli.app import err, run_until_signal, shown
from wsproxy.cli.status import Rates, add_status, add_summaries, log_json, print_summary, status_line
from wsproxy.cli.ui import serve_web_view
from wsproxy.core.errors import UserError
from wsproxy.store.files import RecordingError

if TYPE_CHECKING:
    from wsproxy.record.rotation import FolderPlan
    from wsproxy.record.session import RecordSession


def record_with_workers(count: int, db: Path, listen: str, log_format: str, quiet: bool, fail_on: str,
                        ui: str | None, open_browser: bool, sql_timeout: float, args: list[str]) -> None:
    from wsproxy.record.pool import WorkerPool
    from wsproxy.record.session import LOOPBACK, parse_listen, parse_upstream

    host, port = parse_listen(listen)
    upstream = parse_upstream(args[args.index("--upstream") + 1])
    if host not in LOOPBACK:
        err.print(f"[yellow]Warning:[/] listening on {shown(host)}: other machines can connect to this proxy")
    died: list[str] = []
    everyone_died = asyncio.Event()

    def on_event(index: int, event: dict[str, Any]) -> None:
        kind = str(event.pop("event", ""))
        event.pop("ts", None)
        if quiet and kind in ("finding", "findings_suppressed"):
            return
        if log_format == "json":
            log_json(kind, worker=index, **event)
        elif kind == "finding":
            from wsproxy.cli.render import finding_text
            from wsproxy.core.protocol import Finding
            fields = {name: event[name] for name in Finding.__struct_fields__ if name in event}
            err.print(finding_text(msgspec.convert(fields, Finding)), soft_wrap=True)
        elif kind == "findings_suppressed":
            err.print(f"[dim]… {event.get('count', 0):,} more {event.get('code')} not shown (rate limit; all are "
                      f"in the violations table)[/]")
        elif kind == "recording_failed":
            err.print(Text.assemble(("Error:", "bold red"), f" worker {index}: {event.get('message')}: its new "
                                    f"clients get 503"), highlight=False, soft_wrap=True)
        elif kind in ("warning", "injecting"):
            err.print(Text.assemble(("Warning:", "yellow"), f" worker {index}: {event.get('message', event)}"),
                      highlight=False, soft_wrap=True)

    def on_died(index: int, message: str) -> None:
        died.append(message)
        if log_format == "json":
            log_json("worker_died", worker=index, message=message)
        else:
            err.print(Text.assemble(("Error:", "bold red"), f" {message}"), highlight=False, soft_wrap=True)
        if not pool.alive:
            everyone_died.set()

    pool = WorkerPool(count, host, port, db, args, on_event=on_event, on_died=on_died)
    scheme = "wss" if "--tls-cert" in args else "ws"

    async def go(stop: asyncio.Event) -> list[dict[str, Any] | None]:
        await pool.start()
        url = f"{scheme}://{f'[{host}]' if ':' in host else host}:{pool.port}"
        if log_format == "json":
            log_json("listening", url=url, upstream=str(upstream), db=str(db), workers=count)
        elif not quiet:
            err.print(f"recording [bold]{shown(url)}[/] → {shown(upstream)} into {shown(db)}/ with {count} workers "
                      f"(Ctrl-C stops)", highlight=False)
        live = web_view = refresher = None
        try:
            if not quiet and log_format == "text" and err.is_terminal:
                from rich.live import Live
                rates = Rates()
                live = Live(Text("● rec"), console=err, refresh_per_second=2, transient=True)
                live.start()

                async def refresh() -> None:
                    while True:
                        await asyncio.sleep(0.5)
                        fields = [w.status for w in pool.workers if w.status is not None]
                        if fields:
                            assert live is not None
                            live.update(status_line({**add_status(fields), "url": url}, rates, count))
                refresher = asyncio.create_task(refresh(), name="status-line")
            if ui is not None:
                web_view = await start_folder_view(db, ui, open_browser, log_format, sql_timeout, pool.session_id)
            stopped = asyncio.create_task(stop.wait())
            gone = asyncio.create_task(everyone_died.wait())
            await asyncio.wait({stopped, gone}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            gone.cancel()
        finally:
            if refresher is not None:
                refresher.cancel()
            if live is not None:
                live.stop()
            if web_view is not None:
                web_view.reader.close()
                await web_view.stop()
            summaries = await pool.stop()
        return summaries

    summaries = run_until_signal(go)
    written = [summary for summary in summaries if summary is not None]
    if not written:
        raise RecordingError(died[0] if died else f"no worker finished its recording in {db}")
    result = {**add_summaries(written), "db": str(db), "workers": count, "workers_lost": count - len(written)}
    failure = UserError(f"{len(died)} of {count} workers ended early: {died[0]}") if died else None
    print_summary(result, db, log_format, checked="--no-check" not in args, injecting="--inject" in args
                  or "--inject-file" in args, failure=failure, fail_on=fail_on)


async def start_folder_view(db: Path, listen: str, open_browser: bool, log_format: str, sql_timeout: float,
                            session_id: int) -> Any:
    """``--ui`` for a pool: the web view of the whole folder (every worker's segments)."""
    from wsproxy.ui.reader import FileReader
    reader = await asyncio.to_thread(FileReader, db, sql_timeout)
    return await serve_web_view(reader, listen, session_id, open_browser, log_format)


def folder_plan(workers: str, rotate: str | None, keep: str | None, worker: str | None) -> FolderPlan | None:
    """Where --workers, --rotate and --keep (and a worker's hidden --worker) say to record; None: one file."""
    from wsproxy.core.segments import parse_keep, parse_rotate
    from wsproxy.record.pool import cpu_count, parse_worker_spec
    from wsproxy.record.rotation import FolderPlan
    if workers == "auto":
        count = cpu_count()
    elif workers.isdigit() and int(workers) >= 1:
        count = int(workers)
    else:
        raise UserError(f"--workers {workers!r} must be a number of processes (1 or more) or auto")
    rotation = parse_rotate(rotate) if rotate is not None else None
    retention = parse_keep(keep) if keep is not None else None
    if retention is not None and rotation is None:
        raise UserError("--keep deletes closed segments, and only --rotate closes them: add --rotate SIZE|DURATION")
    if worker is not None:
        index, count, session_id, conn_base = parse_worker_spec(worker)
        return FolderPlan(worker=index, workers=count, session_id=session_id, conn_base=conn_base,
                          rotation=rotation, retention=retention)
    if count == 1 and rotation is None:
        return None
    return FolderPlan(workers=count, rotation=rotation, retention=retention)


def worker_args(given: dict[str, Any]) -> list[str]:
    """The options of this `record` that each worker of --workers takes too (by parameter name)."""
    args = ["--upstream", given["upstream"], "--max-message-size", str(given["max_message_size"]),
            "--seed", str(given["seed"]), "--sql-timeout", str(given["sql_timeout"]),
            "--connect-timeout", str(given["connect_timeout"]), "--handshake-timeout", str(given["handshake_timeout"]),
            "--event-loop", given["event_loop"]]
    for name in ("label", "ca", "tls_cert", "tls_key", "profile", "spec", "inject_file", "rotate", "keep"):
        if given[name] is not None:
            args += ["--" + name.replace("_", "-"), str(given[name])]
    for name in ("no_redact", "insecure", "no_check"):
        if given[name]:
            args.append("--" + name.replace("_", "-"))
    for rule in given["inject"] or []:
        args += ["--inject", rule]
    return args


async def report_status(session: RecordSession) -> None:
    """A worker's counters for the pool that shows them, every ``STATUS_SECONDS``."""
    from wsproxy.cli.status import log_json, status_fields
    from wsproxy.record.pool import STATUS_SECONDS
    while True:
        log_json("status", **status_fields(session))
        await asyncio.sleep(STATUS_SECONDS)
