"""Sequence diagrams of recorded traffic, in the style of the protocol overview: one participant per
connection (named by its user) and the server; requests ``->>``, responses ``-->>``, events ``--)``,
findings as notes. Pure: timeline rows in, a ``Diagram`` out, written as Mermaid text here or drawn
as SVG by ``inspect.sequence_svg`` (which needs no browser script and no network)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from wsproxy.core.vocab import DrawnAs
from wsproxy.inspect.timeline import TimelineRow

SERVER = "S"
_SPECIAL = re.compile(r"[#;:\x00-\x1f\x7f-\x9f\u2028\u2029]")  # Mermaid syntax and terminal controls
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Participant:
    key: str  # C<conn_id> or S
    label: str  # plain text, as shown


@dataclass(frozen=True, slots=True)
class Arrow:
    source: str
    target: str
    arrow: str  # Mermaid's: ->> request, -->> response, --) event, -) close and others
    label: str
    kind: DrawnAs


@dataclass(frozen=True, slots=True)
class Note:
    over: str
    severity: str
    text: str


@dataclass
class Diagram:
    participants: list[Participant]
    steps: list[Arrow | Note] = field(default_factory=list)
    not_shown: int = 0  # messages past the limit


DRAWN_AS: dict[str, DrawnAs] = {"request": "request", "response": "response", "event": "event"}


def build(rows: Sequence[TimelineRow], limit: int | None = None) -> Diagram:
    """The diagram of ``rows`` (data frames, closes and their findings), at most ``limit`` messages."""
    messages = [r for r in rows if r.kind in ("text", "binary", "close")]
    shown = messages[:limit] if limit is not None else messages
    names: dict[int, str] = {}
    for row in shown:
        names.setdefault(row.conn_id, row.user_name or f"conn {row.conn_id}")
    order = list(names)
    left, right = order[: (len(order) + 1) // 2], order[(len(order) + 1) // 2:]
    participants = ([Participant(f"C{c}", _one_line(f"{names[c]} #{c}")) for c in left] + [Participant(SERVER, "Server")]
                    + [Participant(f"C{c}", _one_line(f"{names[c]} #{c}")) for c in right])
    diagram = Diagram(participants, not_shown=len(messages) - len(shown))
    for row in shown:
        client, label = f"C{row.conn_id}", _label(row)
        kind: DrawnAs = DRAWN_AS.get(row.msg_type or "", "other")
        if row.sender == "client":
            arrow = "->>" if row.msg_type == "request" else "-)" if row.kind == "close" else "--)" \
                if row.msg_type == "event" else "->>"
            diagram.steps.append(Arrow(client, SERVER, arrow, label, kind))
        else:
            arrow = "-->>" if row.msg_type == "response" else "--)" if row.msg_type == "event" else "-)"
            diagram.steps.append(Arrow(SERVER, client, arrow, label, kind))
        for action in (row.injected or "").splitlines():  # what --inject did to it (drop: it never arrived)
            diagram.steps.append(Note(client, "injected", "injected " + action.split("  (", 1)[0]))
        for finding in (row.findings or "").splitlines():
            severity, _, rest = finding.partition(" ")
            diagram.steps.append(Note(client, severity, rest.split(":", 1)[0]))
    return diagram


def mermaid(rows: Sequence[TimelineRow], limit: int | None = None) -> str:
    """The Mermaid text of ``rows`` (see ``build``)."""
    return to_mermaid(build(rows, limit))


def to_mermaid(diagram: Diagram) -> str:
    lines = ["sequenceDiagram"]
    for participant in diagram.participants:
        lines.append(f"    participant {participant.key} as {_escape(participant.label)}")
    for step in diagram.steps:
        if isinstance(step, Arrow):
            lines.append(f"    {step.source}{step.arrow}{step.target}: {_escape(step.label)}")
        else:
            lines.append(f"    Note over {step.over}: {note_mark(step.severity)} {_escape(step.text)}")
    if diagram.not_shown:
        lines.append(f"    Note over {SERVER}: {more_text(diagram.not_shown)}")
    return "\n".join(lines) + "\n"


def note_mark(severity: str) -> str:
    return "⚡" if severity == "injected" else "⚠" if severity == "error" else "△"


def more_text(count: int) -> str:
    return f"… {count} more messages (raise --limit)"


def _label(row: TimelineRow) -> str:
    if row.kind == "close":
        return _one_line(f"close {row.close_code or ''} {row.text or ''}")
    if row.kind == "binary":
        return f"binary {row.size} bytes"
    if row.msg_type == "request":
        return _one_line(f"{row.type_name} {row.msg_id}")
    if row.msg_type == "response":
        latency = f" ({row.latency_ms:.1f} ms)" if row.latency_ms is not None else ""
        return _one_line(f"response {row.msg_id}{latency}")
    if row.msg_type == "event":
        return _one_line(f"{row.type_name}" + (f" id {row.event_id}" if row.event_id is not None else ""))
    return "invalid message"


def _one_line(text: str) -> str:
    """Newlines and runs of white space folded into one space (a label is one line)."""
    return _SPACE.sub(" ", str(text)).strip()


def _escape(text: str) -> str:
    """Mermaid reads '#', ';' and ':' specially and breaks on newlines: write them as entity codes."""
    return _SPECIAL.sub(lambda m: f"#{ord(m.group())};", _one_line(text))


def select(rows: Iterable[TimelineRow], connections: set[int] | None) -> list[TimelineRow]:
    return [r for r in rows if connections is None or r.conn_id in connections]
