"""The closed sets of words wsproxy uses, as types: one place to read them, and mypy to hold every
use to them (a comment listing the words was all there was before).

Core module: standard library only.
"""

from __future__ import annotations

from typing import Literal

Sender = Literal["client", "server"]  # who sent a frame; which leg of a relayed connection
ClosedBy = Literal["client", "server", "proxy"]  # who started a close; "proxy": --inject close= closed both legs
FrameKind = Literal["text", "binary", "ping", "pong", "close"]
MessageType = Literal["request", "response", "event"]  # the protocol's three kinds of envelope
InjectAction = Literal["drop", "duplicate", "delay", "corrupt", "reorder", "close", "pause",
                       "intercept", "edit", "compose", "resend"]  # the last four: hands on the wire (docs/ui.md)
InjectionSource = Literal["inject", "ui", "api", "proxy"]  # who acted: a rule, the page, a script, wsproxy itself
HeldAction = Literal["forward", "drop"]  # what is done with a held message
# "spec": replay --spec found a message (the client's, or the recording's) that breaks the AsyncAPI document
DivergenceKind = Literal["mismatch", "unexpected", "skipped", "closed-early", "refused", "payload-differs", "spec"]
DifferenceKind = Literal["missing", "unexpected", "changed", "wrong-type", "missing-field", "unexpected-field",
                         "close", "handshake", "finding"]
StepAction = Literal["open", "send", "close"]  # what a rerun does next on a connection
DrawnAs = Literal["request", "response", "event", "other"]  # how a diagram draws a message
