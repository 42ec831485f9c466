"""The relay's closing handshake as a pure state machine: what to do when a close frame, a protocol
error or a vanished peer arrives on one leg.

The relay tells a connection's ``Closing`` what happened on a leg (``"client"`` or ``"server"``)
and carries out the actions it answers, in order; it decides nothing itself. The rules (RFC 6455
section 7, as Autobahn sections 5-7 test them through the proxy):

- The first close frame starts the handshake: it is forwarded to the other leg as it is, and the
  proxy waits for the other side's reply (``ForwardClose``), relaying whatever frames are still in
  flight from that side meanwhile.
- The reply completes both handshakes: it goes to the side that started (``AnswerClose``), and the
  replying leg is ended (``Drop``). When the starting side broke the protocol, it gets the proxy's
  verdict (the error code) whatever the reply said.
- A protocol error from the client (invalid UTF-8, a bad frame, a forbidden close code) is closed
  towards the server with the error's code, so the server's replies to the client's earlier valid
  frames still reach the client; one from the server is closed towards the client at once.
- A peer that vanishes without a close frame: the other side is closed with 1001 (the client went
  away) or 1011 (the upstream did); during a handshake the other leg is simply dropped.

Core module: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsproxy.core.vocab import ClosedBy, Sender

Side = Sender  # a side of a relayed connection is who sends on it

PROTOCOL_ERROR = 1002
GOING_AWAY = 1001
INTERNAL_ERROR = 1011
NORMAL = 1000
NO_STATUS = 1005  # how aiohttp reports a close frame without a code
# "MUST NOT be set as a status code in a Close frame" (RFC 6455 7.4.1); aiohttp lets 1006 through
FORBIDDEN_CLOSE_CODES = frozenset({1005, 1006, 1015})
MAX_REASON_BYTES = 120  # a close frame's payload is at most 125 bytes, two of them the code


@dataclass(frozen=True, slots=True)
class ForwardClose:
    """Send a close frame to ``to`` and keep its leg open for the reply (not aiohttp's close(),
    which would swallow the frames still in flight from that peer)."""

    to: Side
    code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class AnswerClose:
    """Answer a close that ``to`` started: send our close frame and end its transport."""

    to: Side
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class CloseLeg:
    """The proxy closes ``to`` itself, with this code and reason (drop it if it does not answer)."""

    to: Side
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Drop:
    """End ``to``'s transport: its closing handshake is complete, or it can no longer take part."""

    to: Side


Action = ForwardClose | AnswerClose | CloseLeg | Drop


def other(side: Side) -> Side:
    return "server" if side == "client" else "client"


@dataclass(slots=True)
class Closing:
    """How one relayed connection is ending: who started, with which code, and what went wrong.

    ``closed_by``, ``close_code`` and ``close_reason`` are what the recording keeps: who started
    the close (or went away, or broke the protocol) and the code and reason the other side got.
    """

    closed_by: ClosedBy | None = None
    close_code: int | None = None
    close_reason: str | None = None
    error: str | None = None
    failed: bool = False  # the closing side broke the protocol: close_code is the proxy's verdict

    def close_frame(self, sender: Side, code: int | None, reason: str) -> list[Action]:
        """``sender`` sent a close frame (already relayed frames before it are not affected)."""
        if code in FORBIDDEN_CLOSE_CODES:
            actions = self.protocol_error(sender, PROTOCOL_ERROR,
                                          f"close code {code} must not be sent in a close frame")
            if sender == "server":  # aiohttp did not answer it: we do, with 1002
                actions.append(AnswerClose("server", PROTOCOL_ERROR, ""))
            return actions
        if self.closed_by is None:  # this side starts the closing handshake
            self.closed_by, self.close_code, self.close_reason = sender, code, reason
            return [ForwardClose(other(sender), code, reason)]
        if self.failed:  # the other side broke the protocol: it gets the error code, whatever the reply said
            code, reason = self.close_code, self.close_reason or ""
        # the reply: it completes the starting side's handshake too
        return [AnswerClose(other(sender), code or NORMAL, reason), Drop(sender)]

    def protocol_error(self, sender: Side, code: int | None, detail: str) -> list[Action]:
        """``sender`` sent something invalid (``code`` is what aiohttp's error says, if anything)."""
        if self.closed_by is not None and self.closed_by != sender:
            return [Drop(other(sender))]  # we are finishing a close the other side started
        code = code or PROTOCOL_ERROR
        reason = f"{sender} broke the protocol: {detail}"[:MAX_REASON_BYTES]
        self.error = f"{sender} sent an invalid frame ({code}): {detail}"
        self.closed_by, self.close_code, self.close_reason = sender, code, reason
        if sender == "client":
            # Not aiohttp's close on the client leg: the server's replies to the valid frames before the
            # bad one still reach the client, then the server's answer to our close ends both legs in order.
            self.failed = True
            return [ForwardClose("server", code, reason)]
        return [CloseLeg("client", code, reason)]

    def vanished(self, sender: Side) -> list[Action]:
        """``sender``'s transport ended without a close frame."""
        if self.closed_by is not None:
            # mid-handshake: the side that started waits for no reply any more; a side that already
            # replied has nothing more to say
            return [Drop(other(sender))] if self.closed_by != sender else []
        code = INTERNAL_ERROR if sender == "server" else GOING_AWAY
        reason = f"{'upstream' if sender == 'server' else 'client'} went away without a close frame"
        self.error = reason
        self.closed_by, self.close_code, self.close_reason = sender, code, reason
        return [CloseLeg(other(sender), code, reason)]

    def leg_closing(self, sender: Side) -> list[Action]:
        """``sender``'s leg reports it is closing (aiohttp: we closed it ourselves meanwhile)."""
        if self.closed_by == "proxy":  # --inject close=: the proxy is closing both legs itself
            return []
        return [Drop(other(sender))] if self.closed_by is not None and self.closed_by != sender else []

    def injected(self, code: int, reason: str) -> list[Action]:
        """``--inject close=CODE``: the proxy itself closes both legs with ``code`` (``closed_by`` "proxy")."""
        if self.closed_by is not None:
            return []
        self.closed_by, self.close_code, self.close_reason = "proxy", code, reason
        return [CloseLeg("client", code, reason), CloseLeg("server", code, reason)]

    def timed_out(self, seconds: float) -> None:
        """The other side did not answer a close within ``seconds``: both legs are dropped."""
        self.error = self.error or f"no close reply within {seconds:g} s"

    def crashed(self, problem: str) -> None:
        """A pump failed with an unexpected error (a bug): say so in the recording."""
        self.error = f"relay error: {problem}"
