"""``wsproxy ui``: the web view of a recording, and its start for ``record --ui`` too."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wsproxy.cli.app import address_in_use, command, err, out, run_until_signal, shown
from wsproxy.cli.options import LiveRecording, SessionOption, SqlTimeoutOption, positive

if TYPE_CHECKING:
    from wsproxy.ui.reader import Reader
    from wsproxy.ui.server import UiServer

PANEL = "Inspect a recording"
DEFAULT_LISTEN = "127.0.0.1:8090"

OpenOption = Annotated[bool, typer.Option("--open", help="Open the page in the default browser.")]


async def start_ui(reader: Any, listen: str, session: int | None, fallback: bool, hands: Any = None) -> Any:
    """The web view on ``listen``; with ``fallback`` (the default address), any free port if that one is taken."""
    from wsproxy.record.session import LOOPBACK, parse_listen
    from wsproxy.ui.server import UiServer
    host, port = parse_listen(listen)
    server = UiServer(reader, session, hands=hands)
    try:
        await server.start(host, port)
    except OSError as exc:
        if not fallback or not address_in_use(exc):
            raise
        await server.start(host, 0)
    if host not in LOOPBACK:
        err.print(f"[yellow]Warning:[/] the web view listens on {shown(host)}: anyone who can reach it and has "
                  "the URL's token can read the recording")
    return server


async def serve_web_view(reader: Reader, listen: str, session_id: int, open_browser: bool,
                         log_format: str, hands: Any = None) -> UiServer:
    try:
        server = await start_ui(reader, listen, session_id, fallback=False, hands=hands)
    except BaseException:
        reader.close()
        raise
    if log_format == "json":
        from wsproxy.cli.status import log_json
        log_json("ui", url=server.url)
    else:
        err.print(f"web view [bold]{shown(server.url)}[/]", highlight=False, soft_wrap=True)
    if open_browser:
        import webbrowser
        webbrowser.open(server.url)
    return server


@command(panel=PANEL)
def ui(
    recording: LiveRecording,
    listen: Annotated[str, typer.Option(help=f"HOST:PORT to serve the page on (default {DEFAULT_LISTEN}, "
                                             "or a free port if that is taken).")] = DEFAULT_LISTEN,
    session_id: SessionOption = None,
    open_browser: OpenOption = False,
    sql_timeout: SqlTimeoutOption = 10.0,
) -> None:
    """Browse a recording in a web page: connections, frames, pairs, findings, charts, live.

    Prints the URL to open (its token lets only you in) and serves until Ctrl-C. The page follows
    a recording that `wsproxy record` is still writing. Everything it needs is served from the
    package: it works offline. See docs/ui.md.

    Examples:

      wsproxy ui demo.duckdb

      wsproxy ui today.duckdb --session 2 --open

      wsproxy ui today.duckdb --listen 127.0.0.1:9000
    """
    from wsproxy.ui.reader import FileReader

    reader = FileReader(recording, positive("--sql-timeout", sql_timeout))  # a bad file: open_recording's error

    async def go(stop: asyncio.Event) -> None:
        from wsproxy.ui import views
        await views.session_id(reader, session_id)  # a session that is not there: say so now, not in the page
        server = await start_ui(reader, listen, session_id, fallback=listen == DEFAULT_LISTEN)
        try:
            live = " (being recorded: the page follows it)" if reader.live else ""
            err.print(f"serving {shown(recording)}{live} — open the URL below; Ctrl-C stops", highlight=False)
            out.print(server.url, highlight=False, soft_wrap=True)
            if open_browser:
                import webbrowser
                webbrowser.open(server.url)
            await stop.wait()
        finally:
            reader.close()  # first: a running query must not hold the stop
            await server.stop()
    try:
        run_until_signal(go)
    finally:
        reader.close()


@command(panel=PANEL)
def mcp(
    recording: LiveRecording,
    sql_timeout: SqlTimeoutOption = 10.0,
) -> None:
    """Serve a recording to a coding agent over MCP (stdio): sessions, connections, frames,
    findings, exchanges and read-only SQL.

    The agent starts this command itself: add it to the agent's MCP configuration (docs/mcp.md).
    Stdout carries the protocol; nothing else is printed there. It reads a recording that
    `wsproxy record` is still writing, and changes nothing.

    Examples:

      wsproxy mcp today.duckdb

      claude mcp add wsproxy -- wsproxy mcp /path/to/today.duckdb

      wsproxy mcp captures/   (a folder of segments: --workers, --rotate)
    """
    import anyio

    from wsproxy.ui.mcp import build_server
    from wsproxy.ui.reader import FileReader

    reader = FileReader(recording, positive("--sql-timeout", sql_timeout))  # a bad file: open_recording's error
    try:
        anyio.run(build_server(reader).run_stdio_async)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
