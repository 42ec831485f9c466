"""Mermaid sequence diagrams of the demo flow, checked structurally."""

from __future__ import annotations

import re
from pathlib import Path

from test_query import wsproxy
from wsproxy.inspect.diagram import mermaid
from wsproxy.inspect.timeline import TimelineRow, timeline

FAULTS = Path(__file__).parent.parent / "fixtures" / "schema-v2-demo-faults.duckdb"


def test_the_demo_flow_as_a_sequence_diagram() -> None:
    rows = timeline(FAULTS, 1)
    text = mermaid(rows)
    lines = text.splitlines()
    assert lines[0] == "sequenceDiagram"
    participants = [line for line in lines if line.strip().startswith("participant")]
    assert participants == ["    participant C1 as User1 #35;1", "    participant C2 as User2 #35;2",
                            "    participant S as Server", "    participant C3 as User1 #35;3"]
    arrows = [line.strip() for line in lines[1:] if not line.strip().startswith(("participant", "Note"))]
    requests = [r for r in rows if r.msg_type == "request"]
    responses = [r for r in rows if r.msg_type == "response"]
    events = [r for r in rows if r.msg_type == "event" and r.sender == "server"]
    assert len([a for a in arrows if re.match(r"C\d+->>S: ", a)]) == len(requests) == 13
    assert len([a for a in arrows if re.match(r"S-->>C\d+: response ", a)]) == len(responses) == 14
    assert len([a for a in arrows if re.match(r"S--\)C\d+: ", a)]) == len(events)
    assert "    Note over C1: ⚠ duplicate-response" in lines and "    Note over C3: ⚠ event-id-gap" in lines


def test_labels_cannot_break_the_diagram() -> None:
    row = TimelineRow(1, 1, None, "client", "text", "request", "evil;id#1:x\nnext", "new", None, "", 1, None,
                      "a;b", None, None)
    text = mermaid([row])
    assert "C1->>S: new evil#59;id#35;1#58;x next" in text and "participant C1 as a#59;b #35;1" in text


def test_limit_and_outputs(tmp_path) -> None:
    limited = wsproxy("diagram", str(FAULTS), "--limit", "3").stdout
    assert limited.count("->>") + limited.count("--)") + limited.count("-)") == 3 and "more messages" in limited
    page = tmp_path / "flow.html"
    assert wsproxy("diagram", str(FAULTS), "-o", str(page)).returncode == 0
    assert '<pre class="mermaid">' in page.read_text() and "sequenceDiagram" in page.read_text()
    svg = wsproxy("diagram", str(FAULTS), "-o", str(tmp_path / "flow.svg"))
    if svg.returncode != 0:  # no Mermaid CLI here: say how to get one, in one line
        assert "npm install -g @mermaid-js/mermaid-cli" in svg.stderr and svg.stderr.count("\n") == 1
