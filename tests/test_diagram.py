"""Mermaid sequence diagrams of the demo flow, checked structurally."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from helpers import wsproxy
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
    text = page.read_text()
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="sequence-diagram"' in text and "<script" not in text
    assert "https://" not in text  # nothing to fetch: the page works offline (test_browser shows it drawn)
    assert '<pre class="mermaid-source">' in text and "sequenceDiagram" in text
    svg = tmp_path / "flow.svg"
    assert wsproxy("diagram", str(FAULTS), "-o", str(svg)).returncode == 0
    ET.fromstring(svg.read_text())  # well-formed XML
    png = wsproxy("diagram", str(FAULTS), "-o", str(tmp_path / "flow.png"))
    if png.returncode != 0:  # no Mermaid CLI here: say how to get one, in one line
        assert "npm install -g @mermaid-js/mermaid-cli" in png.stderr and png.stderr.count("\n") == 1


def test_the_svg_draws_every_message_participant_and_note() -> None:
    from wsproxy.inspect.diagram import build
    from wsproxy.inspect.sequence_svg import sequence_svg
    drawn = build(timeline(FAULTS, 1))
    root = ET.fromstring(sequence_svg(drawn))
    groups = [g.get("class") for g in root.iter("{http://www.w3.org/2000/svg}g")]
    arrows = [s for s in drawn.steps if hasattr(s, "arrow")]
    assert groups.count("participant") == 2 * len(drawn.participants) == 8
    assert sum(1 for g in groups if g.startswith("message")) == len(arrows)
    assert groups.count("note error") == 2 and groups.count("note info") == 1
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "User1 #1" in texts and "⚠ duplicate-response" in texts and "subscribe User1-001" in texts


def test_svg_labels_are_escaped_and_cut_to_fit() -> None:
    from wsproxy.inspect.diagram import build
    from wsproxy.inspect.sequence_svg import sequence_svg
    row = TimelineRow(1, 1, None, "client", "text", "request", "<script>&" + "x" * 500, "new", None, "", 1, None,
                      "a<b", None, None)
    svg = sequence_svg(build([row]))
    root = ET.fromstring(svg)  # still well-formed
    label = next(t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.text.startswith("new "))
    assert label.endswith("…") and len(label) < 100 and "<script>" not in svg
    assert any(t.text == "new <script>&" + "x" * 500 for t in root.iter("{http://www.w3.org/2000/svg}title"))
