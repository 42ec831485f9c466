"""``wsproxy check``: the live checker's rules, run over a recording."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wsproxy.core.checker import Checker
from wsproxy.core.profile import CHAT_PROFILE, Profile, fails
from wsproxy.core.protocol import Finding, MessageDecoder
from wsproxy.core.recorded import RecordedFrame, RecordedSession
from wsproxy.core.segments import parse_segment_name
from wsproxy.store.read import SessionInfo, last_time, observations, session_info
from wsproxy.store.recording import open_recording


@dataclass
class CheckReport:
    recording: Path
    session: SessionInfo
    profile: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = {"error": 0, "warning": 0, "info": 0}
        for finding in self.findings:
            counts[finding.severity] = counts.get(finding.severity, 0) + 1
        return counts

    def failed(self, fail_on: str = "error") -> bool:
        """Whether findings at or above ``fail_on`` severity were seen ("none": never)."""
        return fails(self.counts, fail_on)


def check_recording(path: Path, session_id: int | None = None, profile: Profile = CHAT_PROFILE,
                    progress: Callable[[int], None] | None = None) -> CheckReport:
    """Feed a recorded session to the checker in the order the live checker saw it.

    Text frames are decoded again under ``profile`` (so another profile can be tried on old
    traffic); times are the recorded ones, so the findings equal the live ones."""
    con = open_recording(path)
    try:
        info = session_info(con, session_id)
        checker = Checker(profile)
        decode = MessageDecoder(profile).decode
        findings: list[Finding] = []
        seen = 0
        for rank, conn_id, ts, seq, sender, kind, text, data in observations(con, info.session_id):
            if rank == 1:
                findings += checker.message(conn_id, seq, ts, sender,
                                            decode(kind, text if kind == "text" else data, sender))
                seen += 1
                if progress is not None and seen % 10_000 == 0:
                    progress(seen)
            elif rank == 0:
                findings += checker.open(conn_id, ts)
            else:
                findings += checker.close(conn_id, ts)
        end = last_time(con, info.session_id)
        if end is not None and not continues(path):
            findings += checker.finish(end)  # connections never closed (the recorder was killed)
    finally:
        con.close()
    findings.sort(key=lambda f: (f.conn_id or 0, f.seq or 0, f.code))
    return CheckReport(path, info, profile.name, findings)


def continues(path: Path) -> bool:
    """A segment whose session goes on in the next segment of its folder: the connections still open
    at its end were carried there (``record.rotation``), so what they still await is not missing."""
    name = parse_segment_name(path.name)
    return name is not None and (path.parent / name.next().file_name).exists()


def check_session(session: RecordedSession, profile: Profile = CHAT_PROFILE) -> list[Finding]:
    """The checker over a session held as plain values (a JSONL or HAR source, a rerun), in the
    order ``check_recording`` feeds a DuckDB one: by time; opens, then frames, then closes."""
    timeline: list[tuple[int, int, int, int, RecordedFrame | None]] = []
    for conn in session.connections:
        if conn.status != 101:
            continue
        timeline.append((conn.opened_us, 0, conn.conn_id, 0, None))
        timeline += [(f.ts_us, 1, conn.conn_id, f.seq, f) for f in conn.frames if f.kind in ("text", "binary")]
        if conn.closed_us is not None:
            timeline.append((conn.closed_us, 2, conn.conn_id, 0, None))
    timeline.sort(key=lambda entry: entry[:4])
    checker = Checker(profile)
    decode = MessageDecoder(profile).decode
    findings: list[Finding] = []
    for ts, rank, conn_id, seq, frame in timeline:
        if rank == 1:
            assert frame is not None  # rank 1: a frame; 0 and 2: a connection's open and close
            findings += checker.message(conn_id, seq, ts, frame.sender,
                                        decode(frame.kind, frame.text if frame.kind == "text" else frame.data,
                                               frame.sender))
        elif rank == 0:
            findings += checker.open(conn_id, ts)
        else:
            findings += checker.close(conn_id, ts)
    if timeline:
        findings += checker.finish(max(entry[0] for entry in timeline))
    return findings
