"""``wsproxy record`` and ``wsproxy demo``: the recording proxy, live."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from wsproxy.cli import options
from wsproxy.cli.app import LOOPS, command, err, out, run_async, run_until_signal, shown
from wsproxy.cli.options import REPORT_FORMATS, FailOnOption, ProfileOption, choice
from wsproxy.core.errors import UserError

if TYPE_CHECKING:
    from wsproxy.record.session import RecordSession
    from wsproxy.ui.reader import Reader
    from wsproxy.ui.server import UiServer

PANEL = "Record"


@command(panel=PANEL)
def record(
    listen: Annotated[str, typer.Option(help="HOST:PORT for clients to connect to (loopback unless you say otherwise).")]
    = "127.0.0.1:8080",
    upstream: Annotated[str, typer.Option(help="The real server: ws:// or wss:// URL; a path prefix is kept.")] = "ws://127.0.0.1:8765",
    db: Annotated[Path, typer.Option(help="DuckDB file to record into (a new session is appended).")] = Path("wsproxy.duckdb"),
    label: Annotated[str | None, typer.Option(help="A name for this session.")] = None,
    no_redact: options.NoRedactOption = False,
    max_message_size: Annotated[int, typer.Option(help="Largest message in bytes, both legs; bigger ones close with 1009 "
                                                      "(0: no limit).")] = 16 * 1024 * 1024,
    insecure: options.InsecureOption = False,
    ca: options.CaOption = None,
    tls_cert: Annotated[str | None, typer.Option(help="Serve wss:// to clients with this certificate (PEM).")] = None,
    tls_key: Annotated[str | None, typer.Option(help="The key of --tls-cert (PEM).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live status; only errors and the final summary.")] = False,
    log_format: Annotated[str, typer.Option(help="text or json (one JSON object per line on stderr).")] = "text",
    profile: ProfileOption = None,
    spec: options.SpecOption = None,
    fail_on: FailOnOption = "none",
    no_check: Annotated[bool, typer.Option("--no-check", help="Record only; do not run the protocol checker.")] = False,
    inject: Annotated[list[str] | None, typer.Option(
        help="Misbehave on purpose, by message: an action and selectors, e.g. 'drop response type=new once', "
             "'delay=400ms event type=typing', 'close=4001 to-client after=3' (repeatable; docs/inject.md).")] = None,
    inject_file: Annotated[Path | None, typer.Option(help="The same rules as data: \\[\\[inject]] tables in TOML.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed for rate= rules, to repeat a run.")] = 0,
    intercept: Annotated[list[str] | None, typer.Option(
        help="Hold the messages these selectors pick until you forward, edit or drop them in the --ui page "
             "(or its API), e.g. 'to-server type=new', 'response once', 'any' (repeatable; docs/ui.md).")] = None,
    hold_timeout: Annotated[float, typer.Option(
        metavar="SECONDS", help="A held message nobody decided on goes out as it came after this long.")] = 60.0,
    ui: Annotated[str | None, typer.Option(
        "--ui", help="Also serve the live web view of this recording on HOST:PORT (e.g. 127.0.0.1:8090); "
                     "its URL, with the access token, is printed (docs/ui.md).")] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="With --ui: open the page in the default browser.")] = False,
    sql_timeout: options.SqlTimeoutOption = 10.0,
    connect_timeout: Annotated[float, typer.Option(
        metavar="SECONDS", help="Give up on an upstream that has not completed its handshake in this time "
                                "(the client gets 504).")] = 10.0,
    handshake_timeout: Annotated[float, typer.Option(
        metavar="SECONDS", help="Close a client connection that has not sent its handshake in this time.")] = 10.0,
    event_loop: Annotated[str, typer.Option(help="Event loop: asyncio (the standard one), uvloop (when installed) "
                                                 "or auto (uvloop when installed); docs/performance.md compares them.")]
    = "asyncio",
    loop: Annotated[str | None, typer.Option(help="Deprecated: the old name of --event-loop (in `replay`, --loop "
                                                  "means start over).")] = None,
    workers: Annotated[str, typer.Option(
        metavar="N", help="Relay and record in N processes on the same --listen address (auto: one per core); "
                          "--db is then a folder of segments (docs/scale.md).")] = "1",
    rotate: Annotated[str | None, typer.Option(
        metavar="SIZE|DURATION", help="Start a new segment after this many recorded bytes or this long (1GB, "
                                      "1h); --db is then a folder of segments.")] = None,
    keep: Annotated[str | None, typer.Option(
        metavar="COUNT|DURATION", help="With --rotate: delete the oldest closed segments beyond this many (per "
                                       "worker) or older than this (24, 7d).")] = None,
    worker: Annotated[str | None, typer.Option(hidden=True, help="Set by --workers for each worker.")] = None,
) -> None:
    """Relay WebSocket clients to the upstream server, check the protocol live and record every
    frame into DuckDB.

    Point your client at the --listen address instead of the server. Findings (unanswered
    requests, lost events, ...) show as they happen and go into the `violations` table. Ctrl-C
    stops; everything relayed is written before the file is closed.

    Examples:

      wsproxy record --upstream ws://127.0.0.1:8765 --listen 127.0.0.1:8080

      wsproxy record --upstream wss://chat.example.org/ws --db today.duckdb --label "login bug"

      wsproxy record --upstream ws://127.0.0.1:8765 --fail-on error --quiet   (CI: exit 1 on any error finding)

      wsproxy record --upstream ws://127.0.0.1:8765 --inject "drop response type=new once"

      wsproxy record --upstream ws://127.0.0.1:8765 --ui 127.0.0.1:8090 --open   (watch it in a browser)

      wsproxy record --upstream ws://127.0.0.1:8765 --ui 127.0.0.1:8090 --intercept "to-server type=new"

      wsproxy record --upstream ws://127.0.0.1:8765 --workers auto --rotate 1GB --keep 7d --db captures/

      wsproxy record --upstream ws://127.0.0.1:8765 --spec chat.asyncapi.yaml   (hold traffic to a document)
    """
    from wsproxy.cli.status import Rates, log_json, show_findings, status_fields, status_line, summary
    from wsproxy.record.session import LOOPBACK, RecordOptions, RecordSession
    from wsproxy.store.files import RecordingError

    choice("--log-format", log_format, REPORT_FORMATS)
    if loop is not None:
        err.print("[yellow]Warning:[/] record --loop is deprecated: use --event-loop (replay --loop means "
                  "something else)", highlight=False)
        event_loop = loop
    choice("--event-loop", event_loop, LOOPS)
    options.fail_on(fail_on)
    for name, seconds in (("--sql-timeout", sql_timeout), ("--connect-timeout", connect_timeout),
                          ("--handshake-timeout", handshake_timeout), ("--hold-timeout", hold_timeout)):
        options.positive(name, seconds)
    if max_message_size < 0:
        raise UserError(f"--max-message-size must be 0 (no limit) or a number of bytes, not {max_message_size}")
    allow_many_connections()
    rules = inject_rules(inject, inject_file)
    breakpoints = intercept_rules(intercept, ui)
    from wsproxy.cli.workers import folder_plan, record_with_workers, report_status, worker_args
    plan = folder_plan(workers, rotate, keep, worker)
    if breakpoints and plan is not None and plan.workers > 1:
        raise UserError("--intercept holds messages in the process that relays them: use it with one worker "
                        "(leave out --workers)")
    chosen_profile = options.profile(profile, spec)  # a bad profile or document: said before any worker starts
    if plan is not None and plan.workers > 1 and worker is None:
        record_with_workers(plan.workers, db, listen, log_format, quiet, fail_on, ui, open_browser, sql_timeout,
                            worker_args(locals()))
        return
    session = RecordSession(RecordOptions(folder=plan, reuse_port=worker is not None,
        listen=listen, upstream=upstream, db=db, label=label, redact=not no_redact, max_message_size=max_message_size,
        insecure=insecure, ca_file=ca, tls_cert=tls_cert, tls_key=tls_key, profile=chosen_profile,
        check=not no_check, inject=rules, seed=seed, intercept=breakpoints, hold_timeout=hold_timeout,
        sql_timeout=sql_timeout, connect_timeout=connect_timeout,
        handshake_timeout=handshake_timeout))
    say_at_once(session, log_format)
    if session.host not in LOOPBACK:
        err.print(f"[yellow]Warning:[/] listening on {shown(session.host)}: other machines can connect to this proxy")

    async def go(stop: asyncio.Event) -> dict:
        await session.start()
        settle_garbage_collector()
        if log_format == "json":
            log_json("listening", url=session.url, upstream=str(session.upstream), db=str(db))
        elif not quiet:
            err.print(f"recording [bold]{shown(session.url)}[/] → {shown(session.upstream)} into {shown(db)} (Ctrl-C stops)",
                      highlight=False)
        if rules:  # loud, even with --quiet: nobody should forget it is on
            announce_injection(rules, seed, log_format)
        if breakpoints:
            announce_breakpoints(breakpoints, hold_timeout, log_format)
        if not quiet:
            show_findings(session, err, log_format)
        live = web_view = None
        reporter = asyncio.create_task(report_status(session), name="status") if worker is not None else None
        if not quiet and log_format == "text" and err.is_terminal:
            from rich.live import Live
            rates = Rates()
            live = Live(status_line(status_fields(session), rates), console=err, refresh_per_second=2,
                        transient=True)
            live.start()
            async def refresh() -> None:
                while True:
                    await asyncio.sleep(0.5)
                    live.update(status_line(status_fields(session), rates))
            refresher = asyncio.create_task(refresh(), name="status-line")
        try:
            if ui is not None:
                web_view = await start_web_view(session, ui, open_browser, log_format)
            await stop.wait()
        finally:
            if reporter is not None:
                reporter.cancel()
            if live is not None:
                refresher.cancel()
                live.stop()
            if web_view is not None:
                await web_view.stop()
                web_view.reader.close()
            await session.stop()
        return summary(session)

    failure: UserError | None = None
    try:
        result = run_until_signal(go, event_loop)
    except RecordingError as exc:
        if session.recorder.error is None:
            raise  # it could not start
        failure, result = exc, summary(session)  # it failed while running: the summary of what was relayed too
    from wsproxy.cli.status import print_summary
    print_summary(result, db, log_format, checked=session.live_check is not None, injecting=bool(rules),
                  failure=failure, fail_on=fail_on)


@command(panel=PANEL)
def demo(
    db: Annotated[Path, typer.Option(help="Where to record the demo.")] = Path("demo.duckdb"),
    faults: Annotated[str, typer.Option(help="Make the chat server misbehave (as chat-server --faults) and watch "
                                             "the checker catch it.")] = "",
) -> None:
    """Record the overview's chat flow: reference server + recording proxy + scripted users.

    Everything runs on free loopback ports and stops by itself; the recording is left in
    --db for you to query.

    Examples:

      wsproxy demo

      wsproxy demo --faults duplicate-response,skip-event-id,binary
    """
    from wsproxy.chat.faults import Faults
    from wsproxy.cli.demo import run_demo

    fault_plan = Faults.parse(faults)
    run_async(lambda: run_demo(db, out, fault_plan))


async def start_web_view(session: RecordSession, listen: str, open_browser: bool, log_format: str) -> UiServer:
    """``--ui``: the web view, reading the recorder's own connection (or its folder); its URL on one line."""
    from wsproxy.ui.reader import FileReader, RecorderReader
    reader: Reader
    if session.sql is not None:
        reader = RecorderReader(session.sql)
    else:  # a folder of segments (--rotate): read as every other reader reads it
        reader = await asyncio.to_thread(FileReader, session.options.db, session.options.sql_timeout)
    from wsproxy.cli.ui import serve_web_view
    return await serve_web_view(reader, listen, session.recorder.session_id, open_browser, log_format,
                                hands=session.hands if session.sql is not None else None)


def intercept_rules(texts: list[str] | None, ui: str | None) -> list:
    """``--intercept`` breakpoints, checked now; they need a page (or its API) to release what they hold."""
    from wsproxy.core.inject import parse_breakpoint
    if texts and ui is None:
        raise UserError("--intercept holds messages until you decide in the web view: add --ui HOST:PORT "
                        "(e.g. --ui 127.0.0.1:8090)")
    return [parse_breakpoint(text) for text in texts or []]


def say_at_once(session: RecordSession, log_format: str) -> None:
    """What the user must know while it happens, in either format and even with --quiet: the recording
    failed (clients now get 503), or too many connections are stuck in their handshake."""
    from wsproxy.cli.status import log_json

    def failed(message: str) -> None:
        if log_format == "json":
            log_json("recording_failed", message=message)
        else:
            err.print(Text.assemble(("Error:", "bold red"), f" {message}: new clients get 503; stop with Ctrl-C"),
                      highlight=False, soft_wrap=True)

    def notice(message: str) -> None:
        if log_format == "json":
            log_json("warning", message=message)
        else:
            err.print(Text.assemble(("Warning:", "yellow"), f" {message}"), highlight=False, soft_wrap=True)
    session.on_failed.append(failed)
    session.relay.on_notice = notice
    quiet_accept_errors(notice)


def quiet_accept_errors(notice: Callable[[str], None]) -> None:
    """asyncio logs a traceback every second while accept() fails for want of file descriptors: say it
    once instead (it goes on accepting as soon as descriptors are free)."""
    import logging

    class Once(logging.Filter):
        said = False

        def filter(self, record: logging.LogRecord) -> bool:
            text = str(record.msg)
            if self.said and "._start_serving(" in text.partition("\n")[0]:
                return False  # asyncio's retry of accept() after the server closed meanwhile: harmless
            if not text.startswith("socket.accept() out of system resource"):
                return True
            if not self.said:
                self.said = True
                notice("the process is out of file descriptors: new connections wait until some close "
                       "(raise the limit with ulimit -n)")
            return False
    logging.getLogger("asyncio").addFilter(Once())


def inject_rules(texts: list[str] | None, path: Path | None) -> list:
    """The --inject rules and those of --inject-file, in that order; a bad one is refused (exit 2)."""
    from wsproxy.core.inject import parse_rule, rules_from_toml
    rules = [parse_rule(text) for text in texts or []]
    if path is not None:
        try:
            document = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read --inject-file {path}: {exc}") from None
        rules += rules_from_toml(document, str(path))
    return rules


def announce_injection(rules: list, seed: int, log_format: str) -> None:
    if log_format == "json":
        from wsproxy.cli.status import log_json
        log_json("injecting", rules=[rule.text for rule in rules], seed=seed)
        return
    err.print(f"[bold magenta]INJECTING FAULTS[/] ({len(rules)} rule(s), seed {seed}): "
              + "; ".join(shown(rule.text) for rule in rules), highlight=False)


def announce_breakpoints(rules: list, hold_timeout: float, log_format: str) -> None:
    if log_format == "json":
        from wsproxy.cli.status import log_json
        log_json("intercepting", rules=[rule.text for rule in rules], hold_timeout=hold_timeout)
        return
    err.print(f"[bold yellow]HOLDING[/] what {len(rules)} breakpoint(s) select until you decide in the web view "
              f"(or {hold_timeout:g} s pass): " + "; ".join(shown(rule.text) for rule in rules), highlight=False)


def allow_many_connections() -> None:
    """Every relayed connection holds two sockets: raise the open-file limit to what the system allows
    (often 1,024 by default, which would refuse the 512th client)."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
    except (ImportError, ValueError, OSError):  # not POSIX, or not allowed: keep the limit there is
        pass


def settle_garbage_collector() -> None:
    """Move everything built so far (modules, typer, aiohttp, DuckDB: ~200,000 objects) out of the
    collector's sight. Python's full collections walk every tracked object and stopped the relay for
    15-36 ms at a time, the stalls of docs/performance.md; what is left to walk is the traffic's own."""
    import gc
    gc.collect()
    gc.freeze()
