"""The ``wsproxy`` command line (typer). Expected errors become one ``Error: ...`` line."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import typer
from rich.console import Console

from wsproxy import __version__

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


class UserError(Exception):
    """An error the user can fix; printed as one line, exit code 1 (or ``code``)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


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


def entry() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry())
