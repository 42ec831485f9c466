"""The ``wsproxy`` command line (typer). Expected errors become one ``Error: ...`` line."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from wsproxy import __version__
from wsproxy.errors import UserError

app = typer.Typer(
    name="wsproxy",
    help="A protocol-aware man-in-the-middle WebSocket proxy and recorder for the JSON chat protocol.\n\n"
         "Quick start:  wsproxy demo",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]Error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def run_async(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine; Ctrl-C cancels it cleanly; known errors become one line."""
    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        err.print("[dim]interrupted[/]")
        raise typer.Exit(130) from None
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    except OSError as exc:
        raise fail(_os_error(exc)) from None


def run_until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, Any]]) -> Any:
    """Run ``main(stop)``; SIGINT and SIGTERM set ``stop`` so it can shut down cleanly.

    Handlers are installed explicitly: a process started in the background by a
    non-interactive shell inherits an ignored SIGINT, and services get SIGTERM.
    """
    async def wrapper() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            return await main(stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    return run_async(wrapper)


def _os_error(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    if exc.errno in (98, 48):  # EADDRINUSE on Linux / macOS
        return f"address already in use ({text}): choose another --port, or stop what listens there"
    return f"{text}" + (f": {exc.filename}" if exc.filename else "")


ProfileOption = Annotated[Optional[Path], typer.Option(
    "--profile", help="A protocol profile (TOML) to check with instead of the built-in chat profile; "
                      "see docs/checks.md.")]
FAIL_ON = ("error", "warning", "none")


def load_profile_option(path: Path | None, code: int = 1) -> Any:
    from wsproxy.profile import CHAT_PROFILE, ProfileError, load_profile
    if path is None:
        return CHAT_PROFILE
    try:
        return load_profile(path)
    except ProfileError as exc:
        raise fail(str(exc), code) from None


def _version(value: bool) -> None:
    if value:
        out.print(f"wsproxy {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """wsproxy: relay, check, record and replay WebSocket chat traffic."""


@app.command("chat-server")
def chat_server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8765,
    faults: Annotated[str, typer.Option(
        help="Misbehave on purpose: comma-separated NAME[:RATE], RATE = once (default), always or 0..1. "
             "Names: drop-response, duplicate-response, orphan-response, skip-event-id, repeat-event-id, "
             "missing-event-id, short-catchup, ms-timestamps, invalid-json, binary.")] = "",
    seed: Annotated[int, typer.Option(help="Random seed for fault rates, to repeat a run.")] = 0,
) -> None:
    """Run the reference chat server of protocol.md (users by ?user=NAME on any path).

    Examples:

      wsproxy chat-server --port 8765

      wsproxy chat-server --faults drop-response,skip-event-id:0.1 --seed 7
    """
    from wsproxy.chat.faults import Faults, FaultSpecError
    from wsproxy.chat.server import serve_until

    try:
        fault_plan = Faults.parse(faults, seed)
    except FaultSpecError as exc:
        raise fail(str(exc)) from None

    def announce(server: Any) -> None:
        err.print(f"chat server listening on [bold]{server.url}[/] (connect to {server.url}/chat?user=NAME)"
                  + (f", faults: {faults}" if faults else "") + "; Ctrl-C stops")

    run_until_signal(lambda stop: serve_until(stop, host, port, fault_plan, announce))
    err.print("chat server stopped")


@app.command("chat-client")
def chat_client(
    url: Annotated[str, typer.Argument(help="Server (or proxy) base URL, e.g. ws://127.0.0.1:8765.")],
    scenario: Annotated[str, typer.Option(help="flow: the overview's User1/User2 flow; load: N users, M messages.")] = "flow",
    users: Annotated[int, typer.Option(help="load: number of users (>= 2).")] = 10,
    messages: Annotated[int, typer.Option(help="load: messages per user.")] = 100,
    window: Annotated[int, typer.Option(help="load: requests in flight per user.")] = 10,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each response or event.")] = 5.0,
) -> None:
    """Play scripted chat users against a server or a proxy.

    Examples:

      wsproxy chat-client ws://127.0.0.1:8765

      wsproxy chat-client ws://127.0.0.1:8080 --scenario load --users 50 --messages 200
    """
    from wsproxy.chat.client import ChatError, overview_flow, run_load

    if scenario not in ("flow", "load"):
        raise fail(f"unknown scenario {scenario!r}: use flow or load")
    if scenario == "load" and users < 2:
        raise fail("--users must be at least 2: each user writes to the next one")

    async def go() -> None:
        try:
            if scenario == "flow":
                clients = await overview_flow(url, timeout=timeout)
                for name, client in clients.items():
                    out.print(f"{name}: received {len(client.received)} messages in the last phase")
                out.print("[green]overview flow completed[/]")
            else:
                result = await run_load(url, users, messages, window, timeout)
                out.print(f"{result.users} users sent {result.messages_sent} messages in {result.seconds:.2f} s "
                          f"({result.requests_per_second:,.0f} requests/s); {result.events_received} events received")
        except ChatError as exc:
            raise UserError(str(exc)) from None
        except Exception as exc:  # aiohttp errors: a refused or failed connection
            if type(exc).__module__.startswith("aiohttp"):
                raise UserError(f"cannot talk to {url}: {exc}") from None
            raise

    run_async(go)


@app.command()
def record(
    listen: Annotated[str, typer.Option(help="HOST:PORT for clients to connect to (loopback unless you say otherwise).")] = "127.0.0.1:8080",
    upstream: Annotated[str, typer.Option(help="The real server: ws:// or wss:// URL; a path prefix is kept.")] = "ws://127.0.0.1:8765",
    db: Annotated[Path, typer.Option(help="DuckDB file to record into (a new session is appended).")] = Path("wsproxy.duckdb"),
    label: Annotated[Optional[str], typer.Option(help="A name for this session.")] = None,
    no_redact: Annotated[bool, typer.Option("--no-redact", help="Keep Authorization/Cookie headers and token query values in the recording.")] = False,
    max_message_size: Annotated[int, typer.Option(help="Largest message in bytes, both legs; bigger ones close with 1009.")] = 16 * 1024 * 1024,
    insecure: Annotated[bool, typer.Option("--insecure", help="Do not verify the wss:// upstream's certificate.")] = False,
    ca: Annotated[Optional[str], typer.Option("--ca", help="Trust this CA file for a wss:// upstream.")] = None,
    tls_cert: Annotated[Optional[str], typer.Option(help="Serve wss:// to clients with this certificate (PEM).")] = None,
    tls_key: Annotated[Optional[str], typer.Option(help="The key of --tls-cert (PEM).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live status; only errors and the final summary.")] = False,
    log_format: Annotated[str, typer.Option(help="text or json (one JSON object per line on stderr).")] = "text",
    profile: ProfileOption = None,
    fail_on: Annotated[str, typer.Option(help="Exit 1 at the end if findings of this severity (or worse) were "
                                              "seen: error, warning or none.")] = "none",
    no_check: Annotated[bool, typer.Option("--no-check", help="Record only; do not run the protocol checker.")] = False,
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
    """
    from wsproxy.record import ConfigError, RecordOptions, RecordSession
    from wsproxy.recorder import RecordingError
    from wsproxy.status import Rates, log_json, show_findings, status_line, summary

    if log_format not in ("text", "json"):
        raise fail("--log-format must be text or json")
    if fail_on not in FAIL_ON:
        raise fail("--fail-on must be error, warning or none")
    options = RecordOptions(listen, upstream, db, label, not no_redact, max_message_size, insecure, ca,
                            tls_cert, tls_key, load_profile_option(profile), not no_check)
    try:
        session = RecordSession(options)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if session.host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]Warning:[/] listening on {session.host}: other machines can connect to this proxy")

    async def go(stop: asyncio.Event) -> dict:
        try:
            await session.start()
        except RecordingError as exc:
            raise UserError(str(exc)) from None
        if log_format == "json":
            log_json("listening", url=session.url, upstream=str(session.upstream), db=str(db))
        elif not quiet:
            err.print(f"recording [bold]{session.url}[/] → {session.upstream} into {db} (Ctrl-C stops)")
        if not quiet:
            show_findings(session, err, log_format)
        live = None
        if not quiet and log_format == "text" and err.is_terminal:
            from rich.live import Live
            rates = Rates(session)
            live = Live(status_line(session, rates), console=err, refresh_per_second=2, transient=True)
            live.start()
            async def refresh() -> None:
                while True:
                    await asyncio.sleep(0.5)
                    live.update(status_line(session, rates))
            refresher = asyncio.create_task(refresh(), name="status-line")
        try:
            await stop.wait()
        finally:
            if live is not None:
                refresher.cancel()
                live.stop()
            try:
                await session.stop()
            except RecordingError as exc:
                raise UserError(str(exc)) from None
        return summary(session)

    result = run_until_signal(go)
    if log_format == "json":
        log_json("summary", **result)
    else:
        err.print(f"recorded {result['connections']} connection(s), "
                  f"{result['frames_client'] + result['frames_server']:,} messages "
                  f"({result['frames_client']:,} from clients, {result['frames_server']:,} from servers), "
                  f"{result['rows_written']:,} frame rows written to {db} as session {result['session_id']}")
        if session.live_check is not None:
            from wsproxy.render import severity_counts
            line = severity_counts(result["findings"])
            line.append(f"  (SELECT * FROM violations WHERE session_id = {result['session_id']})", style="dim")
            err.print(line)
    counts = result.get("findings") or {}
    if fail_on != "none" and (counts.get("error") or (fail_on == "warning" and counts.get("warning"))):
        raise typer.Exit(1)


@app.command()
def check(
    recording: Annotated[Path, typer.Argument(help="A DuckDB file written by `wsproxy record`.")],
    session_id: Annotated[Optional[int], typer.Option("--session", help="Session to check (default: the newest).")] = None,
    profile: ProfileOption = None,
    format: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    fail_on: Annotated[str, typer.Option(help="Exit 1 if findings of this severity (or worse) were seen: "
                                              "error, warning or none.")] = "error",
    max_per_rule: Annotated[int, typer.Option(help="Findings shown per connection and rule in text output.")] = 10,
) -> None:
    """Check a recorded session against the protocol rules, offline.

    Runs exactly the live checker of `record` over the recorded frames (with their recorded
    times) and prints the findings grouped by connection and rule. Exit status: 0 when no
    error-severity finding (see --fail-on), 1 when there are, 2 when the recording cannot be read.

    Examples:

      wsproxy check demo.duckdb

      wsproxy check today.duckdb --session 3 --format json | jq '.counts'

      wsproxy check today.duckdb --profile strict.toml --fail-on warning
    """
    from wsproxy.check import check_recording
    from wsproxy.render import check_report_json, print_check_report
    from wsproxy.store import StoreError

    if format not in ("text", "json"):
        raise fail("--format must be text or json", 2)
    if fail_on not in FAIL_ON:
        raise fail("--fail-on must be error, warning or none", 2)
    chosen = load_profile_option(profile, code=2)
    try:
        if format == "text" and err.is_terminal:
            with err.status("checking…") as status:
                report = check_recording(recording, session_id, chosen,
                                         progress=lambda n: status.update(f"checking… {n:,} frames"))
        else:
            report = check_recording(recording, session_id, chosen)
    except StoreError as exc:
        raise fail(str(exc), exc.code) from None
    if format == "json":
        import msgspec
        sys.stdout.write(msgspec.json.encode(check_report_json(report)).decode() + "\n")
    else:
        print_check_report(report, out, max_per_rule)
    raise typer.Exit(1 if report.failed(fail_on) else 0)


@app.command()
def replay(
    recording: Annotated[Path, typer.Argument(help="A DuckDB recording or a JSONL export of one.")],
    listen: Annotated[str, typer.Option(help="HOST:PORT to serve the replay on.")] = "127.0.0.1:8765",
    session_id: Annotated[Optional[int], typer.Option("--session", help="Session to replay (default: the newest).")] = None,
    timing: Annotated[str, typer.Option(help="asap (default): answer at once; recorded: keep the recorded gaps; "
                                             "scale:F: gaps times F (scale:0.5 = twice as fast).")] = "asap",
    match: Annotated[str, typer.Option(help="strict: the same messages as recorded (ids and timestamps aside); "
                                            "loose: same type and payloadType, closest payload.")] = "strict",
    bind: Annotated[Optional[str], typer.Option(help="Bind clients to recorded connections by query:NAME or "
                                                     "header:NAME instead of path and query.")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Start over when every recorded connection was replayed.")] = False,
    report: Annotated[Optional[Path], typer.Option(help="Append divergences to this JSONL file (default: the "
                                                        "recording's replay_divergences table).")] = None,
    fail_on_divergence: Annotated[bool, typer.Option("--fail-on-divergence",
                                                     help="Exit 1 if any client diverged from the recording.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the final summary.")] = False,
) -> None:
    """Serve a recorded session as a mock server that knows the protocol.

    Clients are bound to recorded connections; each client message is matched with the
    recorded one, and the recorded answers go out with the client's request ids and fresh
    timestamps, in causal order across connections. Divergences are printed and kept.
    Ctrl-C stops. See docs/replay.md.

    Examples:

      wsproxy replay demo.duckdb --listen 127.0.0.1:8765

      wsproxy replay fixtures/login.jsonl --timing recorded --bind query:user

      wsproxy replay today.duckdb --session 2 --match loose --loop --fail-on-divergence
    """
    from wsproxy.record import ConfigError, parse_listen
    from wsproxy.replay.plan import ReplayPlan, TimingError, parse_timing
    from wsproxy.recorder import now_us
    from wsproxy.replay.server import start_replay
    from wsproxy.replay.source import load_recording, save_divergences
    from wsproxy.store import StoreError

    try:
        host, port = parse_listen(listen)
        scale = parse_timing(timing)
    except (ConfigError, TimingError) as exc:
        raise fail(str(exc)) from None
    if match not in ("strict", "loose"):
        raise fail("--match must be strict or loose")
    if bind is not None and not (bind.startswith(("query:", "header:")) and bind.split(":", 1)[1]):
        raise fail("--bind must be query:NAME or header:NAME, e.g. --bind query:user")
    try:
        session = load_recording(recording, session_id)
    except StoreError as exc:
        raise fail(str(exc)) from None
    connections = session.replayable
    if not connections:
        raise fail(f"session {session.session_id} of {recording} has no connection to replay")
    started = now_us()

    async def go(stop: asyncio.Event) -> Any:
        plan = ReplayPlan(session, match=match, scale=scale, bind_key=bind, loop=loop)
        running = await start_replay(session, plan, host, port)
        frames = sum(len(c.frames) for c in connections)
        err.print(f"replaying session {session.session_id}"
                  + (f" ({session.label})" if session.label else "")
                  + f" of {recording}: {len(connections)} connection(s), {frames:,} frames, on "
                  f"[bold]{running.url}[/] (timing {timing}, match {match}); Ctrl-C stops", highlight=False)
        if not quiet:
            from wsproxy.render import divergence_text
            running.server.listeners.append(lambda d: err.print(divergence_text(d), soft_wrap=True))
        try:
            await stop.wait()
        finally:
            await running.stop()
        return running.server

    server = run_until_signal(go)
    try:
        where = save_divergences(recording, session.session_id, started, server.divergences, report)
    except StoreError as exc:
        raise fail(str(exc)) from None
    counters = server.counters
    unbound = [cid for cid, state in server.plan.slots.items() if not state["bound"]]
    by_kind: dict[str, int] = {}
    for divergence in server.divergences:
        by_kind[divergence.kind] = by_kind.get(divergence.kind, 0) + 1
    err.print(f"replayed to {counters.clients} client(s) ({counters.refused} refused): {counters.received:,} "
              f"messages received, {counters.sent:,} sent; "
              + (f"{len(server.divergences)} divergence(s) ({', '.join(f'{k} {n}' for k, n in sorted(by_kind.items()))})"
                 f" kept in {where}" if server.divergences else "no divergence")
              + (f"; recorded connection(s) never bound: {', '.join(map(str, unbound))}" if unbound else ""),
              highlight=False)
    if fail_on_divergence and server.divergences:
        raise typer.Exit(1)


@app.command()
def export(
    recording: Annotated[Path, typer.Argument(help="A DuckDB file written by `wsproxy record`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The file (or, for parquet, folder) to write.")],
    format: Annotated[str, typer.Option("--format", help="jsonl (lossless fixtures format), har (Chrome DevTools "
                                                         "dialect) or parquet (a folder, one file per table).")] = "jsonl",
    session_id: Annotated[Optional[int], typer.Option("--session", help="Session to export (default: the newest).")] = None,
) -> None:
    """Export a recorded session: JSONL for fixtures, HAR for browsers and other tools, Parquet for data tools.

    JSONL is lossless and replayable with `wsproxy replay`; HAR opens in Chrome DevTools, HTTP
    Toolkit and Proxyman (data messages only: HAR cannot carry closes or pings); Parquet writes
    sessions, connections, frames and violations as files in the folder -o names.

    Examples:

      wsproxy export demo.duckdb --format jsonl -o fixtures/overview.jsonl

      wsproxy export today.duckdb --session 3 --format har -o bug-1234.har

      wsproxy export today.duckdb --format parquet -o today-parquet/
    """
    from wsproxy.exporter import export_session
    from wsproxy.store import StoreError

    if format not in ("jsonl", "har", "parquet"):
        raise fail(f"--format {format!r} is not supported: use jsonl, har or parquet")
    try:
        summary = export_session(recording, output, format, session_id)
    except StoreError as exc:
        raise fail(str(exc), exc.code) from None
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror}") from None
    err.print(summary)


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="A HAR file (Chrome, Firefox, mitmproxy, Playwright, ...) or a "
                                                "wsproxy JSONL export.")],
    db: Annotated[Path, typer.Option(help="The recording to add it to, as a new session (created if missing).")],
    label: Annotated[Optional[str], typer.Option(help="A name for the new session (default: the file name).")] = None,
) -> None:
    """Import a capture as a new session, parsed like recorded traffic.

    Afterwards check, replay, query, show and diagram work on it as on a recording.
    Malformed HAR rows are skipped and counted, never fatal.

    Examples:

      wsproxy import chrome-export.har --db captures.duckdb

      wsproxy import fixtures/overview.jsonl --db restored.duckdb && wsproxy check restored.duckdb
    """
    from wsproxy.importer import import_file
    from wsproxy.store import StoreError

    try:
        result = import_file(source, db, label)
    except StoreError as exc:
        raise fail(str(exc), exc.code) from None
    err.print(f"imported {result.connections} connection(s), {result.frames:,} frames from {source} into {db} as "
              f"session {result.session_id}")
    for reason, count in sorted(result.skipped.items()):
        err.print(f"[yellow]skipped {count} × {reason}[/]")


OUTPUT_FORMATS = ("table", "csv", "json", "markdown")
FormatOption = Annotated[str, typer.Option("--format", help="table (default), csv, json or markdown.")]


def _output_format(fmt: str) -> str:
    if fmt not in OUTPUT_FORMATS:
        raise fail(f"--format must be one of {', '.join(OUTPUT_FORMATS)}")
    return fmt


@app.command()
def query(
    recording: Annotated[Path, typer.Argument(help="A DuckDB file written by `wsproxy record` (also while it records).")],
    sql: Annotated[str, typer.Argument(help="Read-only SQL: tables sessions, connections, frames, violations; "
                                            "views messages, exchanges, events (docs/sql.md).")],
    format: FormatOption = "table",
) -> None:
    """Run read-only SQL on a recording.

    Works while `wsproxy record` is writing the file: the recorder answers the query. Writes
    (INSERT, UPDATE, COPY, ...) are refused.

    Examples:

      wsproxy query demo.duckdb "SELECT payload_type, count(*), max(latency_ms) FROM exchanges GROUP BY 1"

      wsproxy query today.duckdb "SELECT * FROM violations" --format json | jq '.[].message'

      wsproxy query today.duckdb "SELECT user_name, count(*) FROM messages GROUP BY 1" --format markdown
    """
    from wsproxy.query import run_query
    from wsproxy.render import print_result
    from wsproxy.store import StoreError

    fmt = _output_format(format)
    try:
        result = run_query(recording, sql)
    except StoreError as exc:
        raise fail(str(exc), exc.code) from None
    print_result(result, fmt, out, sys.stdout)


@app.command()
def sessions(
    recording: Annotated[Path, typer.Argument(help="A DuckDB file written by `wsproxy record`.")],
    format: FormatOption = "table",
) -> None:
    """List the sessions of a recording: when, how long, connections, messages, findings.

    Examples:

      wsproxy sessions today.duckdb

      wsproxy sessions today.duckdb --format json
    """
    from wsproxy.render import print_result
    from wsproxy.store import StoreError
    from wsproxy.timeline import sessions as list_sessions

    fmt = _output_format(format)
    try:
        print_result(list_sessions(recording), fmt, out, sys.stdout)
    except StoreError as exc:
        raise fail(str(exc), exc.code) from None


@app.command()
def connections(
    recording: Annotated[Path, typer.Argument(help="A DuckDB file written by `wsproxy record`.")],
    session_id: Annotated[Optional[int], typer.Option("--session", help="Session (default: the newest).")] = None,
    format: FormatOption = "table",
) -> None:
    """List the connections of a session: URL, duration, messages each way, close, findings.

    Examples:

      wsproxy connections today.duckdb

      wsproxy connections today.duckdb --session 2 --format csv
    """
    from wsproxy.render import print_result
    from wsproxy.store import StoreError
    from wsproxy.timeline import connections as list_connections
    from wsproxy.timeline import newest_session

    fmt = _output_format(format)
    try:
        chosen = session_id if session_id is not None else newest_session(recording)
        print_result(list_connections(recording, chosen), fmt, out, sys.stdout)
    except StoreError as exc:
        raise fail(str(exc), exc.code) from None


@app.command()
def show(
    recording: Annotated[Path, typer.Argument(help="A DuckDB file written by `wsproxy record` (also while it records).")],
    conn: Annotated[Optional[int], typer.Argument(help="Only this connection.")] = None,
    session_id: Annotated[Optional[int], typer.Option("--session", help="Session (default: the newest).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep showing new frames as they are recorded.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many frames (without --follow).")] = 10_000,
) -> None:
    """Show a session as a coloured timeline: time, direction, type, ids, payload, latency, findings.

    Examples:

      wsproxy show demo.duckdb

      wsproxy show today.duckdb 3           (connection 3 only)

      wsproxy show today.duckdb --follow    (while `wsproxy record` writes it; Ctrl-C stops)
    """
    import time as clock

    from wsproxy.render import timeline_text
    from wsproxy.store import StoreError
    from wsproxy.timeline import newest_session, timeline

    try:
        chosen = session_id if session_id is not None else newest_session(recording)
        rows = timeline(recording, chosen, conn, limit=limit)
        for row in rows:
            out.print(timeline_text(row, out.width), soft_wrap=True)
        if not follow:
            if not rows:
                err.print(f"session {chosen} has no frames" + (f" on connection {conn}" if conn else ""))
            return
        seen = {(r.conn_id, r.seq) for r in rows}
        since = rows[-1].ts if rows else None
        while True:
            clock.sleep(0.5)
            fresh = [r for r in timeline(recording, chosen, conn, since=since) if (r.conn_id, r.seq) not in seen]
            for row in fresh:
                out.print(timeline_text(row, out.width), soft_wrap=True)
                seen.add((row.conn_id, row.seq))
            if fresh:
                since = fresh[-1].ts
    except StoreError as exc:
        raise fail(str(exc), exc.code) from None
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@app.command()
def diagram(
    recording: Annotated[Path, typer.Argument(help="A DuckDB file written by `wsproxy record`.")],
    session_id: Annotated[Optional[int], typer.Option("--session", help="Session (default: the newest).")] = None,
    conns: Annotated[Optional[str], typer.Option("--connections", help="Only these connections, e.g. 1,3.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many messages.")] = 200,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write to FILE: .mmd/.md (text), .html "
                                                                           "(a page that renders it), .svg/.png "
                                                                           "(needs the Mermaid CLI, mmdc).")] = None,
) -> None:
    """Draw a session as a Mermaid sequence diagram (requests ->>, responses -->>, events --), findings as notes).

    Prints the Mermaid text, which GitHub, GitLab and many editors render; -o writes a file.

    Examples:

      wsproxy diagram demo.duckdb

      wsproxy diagram demo.duckdb -o demo.html          (open it in a browser)

      wsproxy diagram today.duckdb --connections 1,3 --limit 50 -o flow.svg
    """
    import shutil
    import subprocess
    import tempfile

    from wsproxy.diagram import html_page, mermaid, select
    from wsproxy.store import StoreError
    from wsproxy.timeline import newest_session, timeline

    try:
        wanted = {int(part) for part in conns.split(",")} if conns else None
    except ValueError:
        raise fail("--connections must be connection ids separated by commas, e.g. 1,3") from None
    try:
        chosen = session_id if session_id is not None else newest_session(recording)
        text = mermaid(select(timeline(recording, chosen), wanted), limit)
    except StoreError as exc:
        raise fail(str(exc), exc.code) from None
    if output is None:
        sys.stdout.write(text)
        return
    suffix = output.suffix.lower()
    if suffix in (".svg", ".png", ".pdf"):
        mmdc = shutil.which("mmdc")
        if mmdc is None:
            raise fail(f"rendering {suffix} needs the Mermaid CLI: npm install -g @mermaid-js/mermaid-cli "
                       f"(or write -o {output.with_suffix('.html')} and open it in a browser)")
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "diagram.mmd"
            source.write_text(text)
            done = subprocess.run([mmdc, "-i", str(source), "-o", str(output)], capture_output=True, text=True)
        if done.returncode != 0:
            raise fail(f"mmdc could not render {output}: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    elif suffix in (".html", ".htm"):
        output.write_text(html_page(text, f"{recording.name} session {chosen}"))
    else:
        output.write_text(text)
    err.print(f"wrote {output}")


@app.command()
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
    from wsproxy.chat.faults import Faults, FaultSpecError
    from wsproxy.demo import run_demo

    try:
        fault_plan = Faults.parse(faults)
    except FaultSpecError as exc:
        raise fail(str(exc)) from None
    run_async(lambda: run_demo(db, out, fault_plan))


def entry() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry())
