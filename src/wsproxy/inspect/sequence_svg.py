"""A sequence diagram drawn as SVG (and a page around it), with no script and no network: participants in columns with their
lifelines, one row per message or note, top to bottom. Pure: a ``Diagram`` in, SVG text out.

Lengths are estimated from character counts (no font metrics here): labels that would overflow the
space between two columns are cut with "…"; the full label is the element's tooltip (``<title>``).
"""

from __future__ import annotations

from html import escape

from wsproxy.inspect.diagram import SERVER, Arrow, Diagram, more_text, note_mark, to_mermaid

CHAR_WIDTH = 7.2  # px per character at FONT_SIZE (an estimate for common sans-serif fonts)
FONT_SIZE = 12
COLUMN_MIN = 150
BOX_HEIGHT = 34
ROW = 30
NOTE_ROW = 26
MARGIN = 20
COLOURS = {"request": "#1f6feb", "response": "#1a7f37", "event": "#8250df", "other": "#57606a"}
NOTE_COLOURS = {"error": ("#ffebe9", "#cf222e"), "warning": ("#fff8c5", "#9a6700"), "info": ("#ddf4ff", "#0969da"),
                "injected": ("#fbefff", "#8250df")}


def sequence_svg(diagram: Diagram) -> str:
    keys = [p.key for p in diagram.participants]
    widest_box = max((len(p.label) for p in diagram.participants), default=6) * CHAR_WIDTH + 24
    widest_label = max((len(s.label) for s in diagram.steps if isinstance(s, Arrow)), default=0) * CHAR_WIDTH + 24
    column = max(COLUMN_MIN, widest_box, min(widest_label, 360))
    x = {key: MARGIN + column / 2 + i * column for i, key in enumerate(keys)}
    width = int(MARGIN * 2 + column * len(keys))
    parts: list[str] = []
    y = MARGIN + BOX_HEIGHT + 24
    for step in diagram.steps:
        if isinstance(step, Arrow):
            parts.append(_arrow(step, x[step.source], x[step.target], y))
            y += ROW
        else:
            parts.append(_note(note_mark(step.severity) + " " + step.text, step.severity, x[step.over], y, column))
            y += NOTE_ROW
    if diagram.not_shown:
        parts.append(_note(more_text(diagram.not_shown), "info", x[SERVER], y, column))
        y += NOTE_ROW
    height = int(y + BOX_HEIGHT + MARGIN)
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" class="sequence-diagram" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="{FONT_SIZE}">',
            "<defs>",
            *(f'<marker id="head-{kind}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" '
              f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
              f'<marker id="open-{kind}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" '
              f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10" fill="none" stroke="{colour}"/></marker>'
              for kind, colour in COLOURS.items()),
            "</defs>"]
    lifelines = []
    for participant in diagram.participants:
        cx = x[participant.key]
        lifelines.append(f'<line class="lifeline" x1="{cx:.0f}" y1="{MARGIN + BOX_HEIGHT}" x2="{cx:.0f}" '
                         f'y2="{height - MARGIN - BOX_HEIGHT}" stroke="#8c959f" stroke-dasharray="3 3"/>')
        for top in (MARGIN, height - MARGIN - BOX_HEIGHT):
            lifelines.append(_box(participant.label, cx, top, column - 16))
    return "\n".join(head + lifelines + parts + ["</svg>"])


def _box(label: str, cx: float, top: float, room: float) -> str:
    shown = _fit(label, room - 12)
    box = max(len(shown) * CHAR_WIDTH + 24, 60)
    return (f'<g class="participant"><rect x="{cx - box / 2:.0f}" y="{top}" width="{box:.0f}" height="{BOX_HEIGHT}" '
            f'rx="4" fill="#f6f8fa" stroke="#57606a"/><text x="{cx:.0f}" y="{top + BOX_HEIGHT / 2 + 4:.0f}" '
            f'text-anchor="middle" font-weight="600">{escape(shown)}</text></g>')


def _arrow(step: Arrow, x1: float, x2: float, y: float) -> str:
    colour = COLOURS[step.kind]
    dashed = ' stroke-dasharray="6 4"' if step.arrow.startswith("--") else ""
    marker = ("head" if step.arrow.endswith(">>") else "open") + f"-{step.kind}"
    shown = _fit(step.label, abs(x2 - x1) - 16)
    return (f'<g class="message {step.kind}"><title>{escape(step.label)}</title>'
            f'<text x="{(x1 + x2) / 2:.0f}" y="{y - 6:.0f}" text-anchor="middle" fill="{colour}">{escape(shown)}</text>'
            f'<line x1="{x1:.0f}" y1="{y:.0f}" x2="{x2:.0f}" y2="{y:.0f}" stroke="{colour}" stroke-width="1.5"'
            f'{dashed} marker-end="url(#{marker})"/></g>')


def _note(text: str, severity: str, cx: float, y: float, column: float) -> str:
    fill, stroke = NOTE_COLOURS.get(severity, NOTE_COLOURS["info"])
    shown = _fit(text, column - 20)
    box = len(shown) * CHAR_WIDTH + 16
    return (f'<g class="note {escape(severity)}"><title>{escape(text)}</title>'
            f'<rect x="{cx - box / 2:.0f}" y="{y - 16:.0f}" width="{box:.0f}" height="20" fill="{fill}" '
            f'stroke="{stroke}"/><text x="{cx:.0f}" y="{y - 2:.0f}" text-anchor="middle" fill="{stroke}">'
            f'{escape(shown)}</text></g>')


def _fit(text: str, room: float) -> str:
    """``text``, cut with "…" if it is wider than ``room`` pixels."""
    fits = max(int(room / CHAR_WIDTH), 4)
    return text if len(text) <= fits else text[: fits - 1] + "…"


def html_page(diagram: Diagram, title: str) -> str:
    """A single file that shows the diagram in any browser, offline: the SVG is drawn here, not by a
    script from a CDN. The Mermaid text is kept below it, for pasting into Markdown."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 2em; }} svg {{ max-width: none; }}
details {{ margin-top: 2em; }} pre {{ background: #f6f8fa; padding: 1em; overflow: auto; }}</style></head>
<body><h1>{escape(title)}</h1>
{sequence_svg(diagram)}
<details><summary>Mermaid source</summary>
<pre class="mermaid-source">
{escape(to_mermaid(diagram))}</pre></details>
</body></html>
"""
