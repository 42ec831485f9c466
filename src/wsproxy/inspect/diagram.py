"""Mermaid sequence diagrams of recorded traffic, in the style of the protocol overview:
one participant per connection (named by its user) and the server; requests ``->>``,
responses ``-->>``, events ``--)``, findings as notes. Pure: timeline rows in, text out."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

from wsproxy.inspect.timeline import TimelineRow

SERVER = "S"
_SPECIAL = re.compile(r"[#;:\x00-\x1f\x7f-\x9f\u2028\u2029]")  # Mermaid syntax and terminal controls


def mermaid(rows: Sequence[TimelineRow], limit: int | None = None) -> str:
    """The diagram of ``rows`` (data frames, closes and their findings), at most ``limit`` messages."""
    messages = [r for r in rows if r.kind in ("text", "binary", "close")]
    shown = messages[:limit] if limit is not None else messages
    conns: dict[int, str] = {}
    for row in shown:
        conns.setdefault(row.conn_id, row.user_name or f"conn {row.conn_id}")
    order = list(conns)
    left, right = order[: (len(order) + 1) // 2], order[(len(order) + 1) // 2:]
    lines = ["sequenceDiagram"]
    for conn_id in left:
        lines.append(f"    participant C{conn_id} as {_escape(f'{conns[conn_id]} #{conn_id}')}")
    lines.append(f"    participant {SERVER} as Server")
    for conn_id in right:
        lines.append(f"    participant C{conn_id} as {_escape(f'{conns[conn_id]} #{conn_id}')}")
    for row in shown:
        client, label = f"C{row.conn_id}", _label(row)
        if row.sender == "client":
            arrow = "->>" if row.msg_type == "request" else "-)" if row.kind == "close" else "--)" \
                if row.msg_type == "event" else "->>"
            lines.append(f"    {client}{arrow}{SERVER}: {label}")
        else:
            arrow = "-->>" if row.msg_type == "response" else "--)" if row.msg_type == "event" else "-)"
            lines.append(f"    {SERVER}{arrow}{client}: {label}")
        for finding in (row.findings or "").splitlines():
            severity, _, rest = finding.partition(" ")
            code = rest.split(":", 1)[0]
            lines.append(f"    Note over {client}: {'⚠' if severity == 'error' else '△'} {_escape(code)}")
    if len(messages) > len(shown):
        lines.append(f"    Note over {SERVER}: … {len(messages) - len(shown)} more messages (raise --limit)")
    return "\n".join(lines) + "\n"


def _label(row: TimelineRow) -> str:
    if row.kind == "close":
        return _escape(f"close {row.close_code or ''} {row.text or ''}".strip())
    if row.kind == "binary":
        return f"binary {row.size} bytes"
    if row.msg_type == "request":
        return _escape(f"{row.type_name} {row.msg_id}")
    if row.msg_type == "response":
        latency = f" ({row.latency_ms:.1f} ms)" if row.latency_ms is not None else ""
        return _escape(f"response {row.msg_id}{latency}")
    if row.msg_type == "event":
        return _escape(f"{row.type_name}" + (f" id {row.event_id}" if row.event_id is not None else ""))
    return "invalid message"


def _escape(text: str) -> str:
    """Mermaid reads '#', ';' and ':' specially and breaks on newlines: write them as entity codes."""
    return _SPECIAL.sub(lambda m: f"#{ord(m.group())};", " ".join(str(text).split()))


def html_page(diagram: str, title: str) -> str:
    """A single file that renders the diagram in a browser (Mermaid from its CDN)."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body {{ font-family: sans-serif; margin: 2em; }}</style></head>
<body><h1>{html.escape(title)}</h1>
<pre class="mermaid">
{html.escape(diagram)}</pre>
<script type="module">
import mermaid from "https://cdn.jsdelivr.net/npm/mermaid@11/dist/mermaid.esm.min.mjs";
mermaid.initialize({{ startOnLoad: true, sequence: {{ showSequenceNumbers: false }} }});
</script>
</body></html>
"""


def select(rows: Iterable[TimelineRow], connections: set[int] | None) -> list[TimelineRow]:
    return [r for r in rows if connections is None or r.conn_id in connections]
