"""What `rerun` and `diff` print: one report, as a JSON object or JUnit XML (the terminal's rich form
is in ``cli/rerun.py``). Pure: values in, text out."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from wsproxy.core.recorded import RecordedSession
from wsproxy.core.rerun_compare import Difference


@dataclass
class Report:
    title: str  # "rerun" or "diff"
    session: RecordedSession  # the recorded (expected) side
    differences: list[Difference]
    copies: int = 1
    details: dict[str, Any] = field(default_factory=dict)  # source, upstream, sessions, throughput ...
    latency: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def groups(self) -> list[tuple[str, list[Difference]]]:
        """Differences by connection (and copy), in the recorded order; findings last."""
        names = {c.conn_id: connection_name(c.conn_id, c.path, c.query) for c in self.session.connections}
        keys = [(copy, c.conn_id) for copy in range(1, self.copies + 1) for c in self.session.connections]
        grouped: dict[tuple[int, int], list[Difference]] = {key: [] for key in keys}
        for d in self.differences:
            grouped.setdefault((d.copy or 1, d.conn_id), []).append(d)
        out = []
        for (copy, conn_id), items in grouped.items():
            if conn_id == 0:
                continue
            name = names.get(conn_id, f"connection {conn_id}")
            out.append((name + (f", copy {copy}" if self.copies > 1 else ""), items))
        findings = [d for key, items in grouped.items() if key[1] == 0 for d in items]
        out.append(("findings of the live checker", findings))
        return out


def connection_name(conn_id: int, path: str, query: str) -> str:
    return f"connection {conn_id} {path}" + (f"?{query}" if query else "")


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def at(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 3)
    return {"count": len(ordered), "p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 3)}


def latency_table(recorded: dict[str, list[float]], live: dict[str, list[float]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per payloadType, the request -> response latency recorded and now."""
    return {kind: {"recorded": percentiles(recorded.get(kind, [])), "rerun": percentiles(live.get(kind, []))}
            for kind in sorted(set(recorded) | set(live))}


def to_json(report: Report) -> dict[str, Any]:
    by_kind: dict[str, int] = {}
    for d in report.differences:
        by_kind[d.kind] = by_kind.get(d.kind, 0) + 1
    return {"command": report.title, **report.details, "copies": report.copies,
            "differences": len(report.differences), "by_kind": by_kind,
            "items": [d.to_dict() for d in report.differences], "latency": report.latency}


def to_junit(report: Report) -> str:
    """JUnit XML: a test case per connection (and copy) and one for the checker's findings; each
    difference a <failure>."""
    groups = report.groups()
    failures = sum(1 for _, items in groups if items)
    suites = ElementTree.Element("testsuites", name=f"wsproxy {report.title}", tests=str(len(groups)),
                                 failures=str(failures))
    suite = ElementTree.SubElement(suites, "testsuite", name=f"wsproxy {report.title}", tests=str(len(groups)),
                                   failures=str(failures), errors="0", skipped="0",
                                   time=f"{report.details.get('elapsed_seconds', 0):.3f}")
    properties = ElementTree.SubElement(suite, "properties")
    for name, value in report.details.items():
        ElementTree.SubElement(properties, "property", name=name, value=str(value))
    for name, items in groups:
        case = ElementTree.SubElement(suite, "testcase", classname=f"wsproxy.{report.title}", name=name)
        for d in items:
            failure = ElementTree.SubElement(case, "failure", message=d.message, type=d.kind)
            failure.text = "\n".join(f"{key}: {value}" for key, value in d.to_dict().items() if value is not None)
    ElementTree.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"
