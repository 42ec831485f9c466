"""Sending by hand on a live connection (docs/ui.md): a message composed in the web view (from a
template: the protocol's empty envelopes or recorded messages, with fresh ids), a recorded client
message resent (a request id already used there renamed), on a live connection or a new one to the
upstream through this proxy. Recorded as ``compose`` and ``resend`` injections."""

from __future__ import annotations

import asyncio
from typing import Any

from wsproxy.clock import now_us
from wsproxy.core.compose import Ids, Template, empty_envelopes, from_recorded, resend_text
from wsproxy.core.errors import UserError
from wsproxy.core.protocol import Finding
from wsproxy.core.vocab import InjectAction, InjectionSource, Sender
from wsproxy.record.legs import send


class HandsError(UserError):
    """A request of the API that cannot be carried out (no such held message or connection, bad text)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Sending:
    """Composing and resending for one relay's ``Hands``."""

    def __init__(self, hands: Any) -> None:
        self.hands = hands
        self._own: dict[int, Any] = {}  # connections opened for a resend: conn id -> (client socket, reader task)

    @property
    def _checker(self) -> Any:
        """The live checker (None with --no-check): what a connection has used, what a message would cause."""
        return getattr(self.hands.relay.observer, "checker", None)

    def ids(self, conn_id: int) -> Ids:
        checker = self._checker
        if checker is None:
            return Ids()
        return Ids(frozenset(checker.request_ids(conn_id)), tuple(checker.pending_requests(conn_id)),
                   checker.last_event_id(conn_id))

    def templates(self, conn_id: int, examples: list[tuple[Sender, str, str]]) -> list[Template]:
        ids, now = self.ids(conn_id), now_us()
        return empty_envelopes(ids, now) + from_recorded(examples, ids, now)

    def preview(self, conn_id: int, to: str, text: str, held_id: int | None = None) -> list[Finding]:
        """The findings ``text`` would cause sent to ``to`` on the connection now (before it is sent)."""
        sender = _sender(to)
        parsed = self.hands.relay.decoder.decode("text", text, sender)
        checker = self._checker
        if checker is None:
            return list(parsed.findings)
        seq = self.hands.held[held_id].seq if held_id in self.hands.held else 0
        return checker.preview(conn_id, seq, now_us(), sender, parsed)

    async def send(self, conn_id: int, to: str, text: Any, source: InjectionSource,
                   action: InjectAction = "compose", note: str | None = None) -> dict[str, Any]:
        """Send ``text`` to ``to`` on a live connection, recorded as sent by the other side, and as ``action``."""
        live = self.hands.live.get(conn_id)
        if live is None:
            raise HandsError(f"connection {conn_id} is not open on this proxy: send on a live connection", 404)
        if not isinstance(text, str):
            raise HandsError("text must be a string (the message to send)")
        sender = _sender(to)
        conn = live.conn
        self.hands.mark(conn_id)
        await send(live.legs[to], True, text)
        seq, ts = conn.next_seq(), now_us()
        self.hands.record_frame(conn, seq, ts, sender, True, text, self.hands.relay.decoder.decode("text", text, sender))
        self.hands.inject_row(conn_id, seq, sender, action, f"{action} to-{to}", source, note, None, text)
        return {"conn_id": conn_id, "seq": seq, "to": to}

    async def resend(self, conn_id: int | None, text: str, source: InjectionSource, path_qs: str = "/",
                     recorded: str | None = None) -> dict[str, Any]:
        """A recorded client message sent again to the server: on a live connection (a request id it
        used already is renamed, the timestamp is now), or on a new connection through this proxy."""
        if conn_id is None:
            conn_id = await self.open_connection(path_qs)
        sent, renamed = resend_text(text, self.ids(conn_id), now_us())
        note = (f"resent {recorded}" if recorded else "resent") + (f"; request id renamed to {renamed}" if renamed else "")
        answer = await self.send(conn_id, "server", sent, source, "resend", note)
        return {**answer, "text": sent, "renamed": renamed}

    async def open_connection(self, path_qs: str) -> int:
        """A new connection to the upstream through this proxy (recorded like any other), kept open
        until the proxy stops; what the server sends on it is read and recorded, not answered."""
        import aiohttp
        if not self.hands.own_url:
            raise HandsError("this proxy is not listening yet", 503)
        marker = f"hands-{next(self.hands.numbers)}"
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.hands.opening[marker] = waiter
        session = aiohttp.ClientSession()
        try:
            socket = await session.ws_connect(self.hands.own_url + path_qs, headers={"X-Wsproxy-Opened-By": marker},
                                              autoping=True, max_msg_size=0)
            conn_id = await asyncio.wait_for(waiter, 10)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await session.close()
            raise HandsError(f"cannot open a new connection to the upstream: {str(exc) or type(exc).__name__}",
                             502) from None
        finally:
            self.hands.opening.pop(marker, None)

        async def drain() -> None:
            try:
                async for _ in socket:
                    pass
            finally:
                await session.close()
        self._own[conn_id] = (socket, asyncio.create_task(drain(), name=f"hands-conn-{conn_id}"))
        return conn_id

    async def stop(self) -> None:
        for socket, task in list(self._own.values()):
            await socket.close()
            await asyncio.gather(task, return_exceptions=True)
        self._own.clear()


def _sender(to: str) -> Sender:
    """Who a message sent ``to`` one side is recorded as coming from (the other side)."""
    if to == "client":
        return "server"
    if to == "server":
        return "client"
    raise HandsError(f'to must be "client" or "server", not {to!r}')
