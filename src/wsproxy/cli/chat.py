"""The reference chat server and its scripted users: ``chat-server`` and ``chat-client``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from wsproxy.cli.app import command, err, out, run_async, run_until_signal, shown
from wsproxy.core.errors import UserError

PANEL = "Reference chat server"


@command("chat-server", panel=PANEL)
def chat_server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8765,
    faults: Annotated[str, typer.Option(
        help="Misbehave on purpose: comma-separated NAME[:RATE], RATE = once (default), always or 0..1. "
             "Names: drop-response, duplicate-response, orphan-response, skip-event-id, repeat-event-id, "
             "missing-event-id, short-catchup, ms-timestamps, invalid-json, binary.")] = "",
    seed: Annotated[int, typer.Option(help="Random seed for fault rates, to repeat a run.")] = 0,
    message_id_base: Annotated[int, typer.Option(
        min=1, help="The first message id it hands out (a changed server for `wsproxy rerun`).")] = 1,
) -> None:
    """Run the reference chat server of protocol.md (users by ?user=NAME on any path).

    Examples:

      wsproxy chat-server --port 8765

      wsproxy chat-server --faults drop-response,skip-event-id:0.1 --seed 7

      wsproxy chat-server --message-id-base 1000     # other ids than a recording's, for rerun
    """
    from wsproxy.chat.faults import Faults
    from wsproxy.chat.server import serve_until

    fault_plan = Faults.parse(faults, seed)

    def announce(server: Any) -> None:
        err.print(f"chat server listening on [bold]{shown(server.url)}[/] (connect to {shown(server.url)}/chat?user=NAME)"
                  + (f", faults: {shown(faults)}" if faults else "") + "; Ctrl-C stops", highlight=False)

    run_until_signal(lambda stop: serve_until(stop, host, port, fault_plan, announce, message_id_base))
    err.print("chat server stopped")


@command("chat-client", panel=PANEL)
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
        raise UserError(f"unknown scenario {scenario!r}: use flow or load")
    if scenario == "load" and users < 2:
        raise UserError("--users must be at least 2: each user writes to the next one")

    async def go() -> None:
        try:
            if scenario == "flow":
                clients = await overview_flow(url, timeout=timeout)
                for name, client in clients.items():
                    out.print(f"{shown(name)}: received {len(client.received)} messages in the last phase")
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
