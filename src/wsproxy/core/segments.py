"""A recording as a folder of segments: their names, and when to rotate and what to keep (pure).

``record --workers N`` and ``record --rotate`` write a folder of segments at the path ``--db`` names;
each segment is an ordinary recording file written by one worker, and every reading command takes
the folder as one recording (``store.folder``). A segment's name says which session, which worker
and which of that worker's segments it is, so that names sort in the order they were written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wsproxy.core.errors import UserError

SEGMENT_SUFFIX = ".duckdb"
_NAME = re.compile(r"^s(\d+)-w(\d+)-(\d+)\.duckdb$")
_SIZE_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
               "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}
_DURATION_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_SPEC = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
MIN_ROTATE_BYTES = 1024 * 1024  # smaller segments would be all overhead
MIN_ROTATE_SECONDS = 1.0


class SegmentSpecError(UserError):
    """A --rotate or --keep value that does not parse; the message says what would."""


@dataclass(frozen=True)
class SegmentName:
    session_id: int
    worker: int
    number: int  # 1, 2, ... within the worker's part of the session

    @property
    def file_name(self) -> str:
        return f"s{self.session_id:05d}-w{self.worker:03d}-{self.number:06d}{SEGMENT_SUFFIX}"

    def next(self) -> SegmentName:
        return SegmentName(self.session_id, self.worker, self.number + 1)


def parse_segment_name(name: str) -> SegmentName | None:
    """A segment's name as its parts; None for a file wsproxy did not name (still read: any recording)."""
    match = _NAME.match(name)
    return SegmentName(*map(int, match.groups())) if match else None


@dataclass(frozen=True)
class Rotation:
    """``--rotate``: close the current segment and start the next after this many bytes or seconds."""
    bytes: int | None = None
    seconds: float | None = None

    def due(self, written_bytes: int, age_seconds: float) -> bool:
        return ((self.bytes is not None and written_bytes >= self.bytes)
                or (self.seconds is not None and age_seconds >= self.seconds))


@dataclass(frozen=True)
class Retention:
    """``--keep``: how many closed segments, or how old, before the oldest are deleted."""
    count: int | None = None
    seconds: float | None = None

    def to_delete(self, closed: list[tuple[str, float]], now: float) -> list[str]:
        """Of the closed segments (name, closed at, oldest first), the ones to delete."""
        doomed: list[str] = []
        if self.count is not None and len(closed) > self.count:
            doomed = [name for name, _ in closed[:len(closed) - self.count]]
        if self.seconds is not None:
            doomed += [name for name, at in closed if now - at > self.seconds and name not in doomed]
        return doomed


def _number_and_unit(option: str, text: str) -> tuple[float, str]:
    match = _SPEC.match(text)
    if not match:
        raise SegmentSpecError(f"{option} {text!r} is not a size or a duration: say e.g. 1GB, 512MiB, 30m or 1h")
    return float(match.group(1)), match.group(2)


def parse_rotate(text: str) -> Rotation:
    """``--rotate 1GB`` (a segment's recorded bytes) or ``--rotate 1h`` (its age)."""
    number, unit = _number_and_unit("--rotate", text)
    if unit in _DURATION_UNITS:
        seconds = number * _DURATION_UNITS[unit]
        if seconds < MIN_ROTATE_SECONDS:
            raise SegmentSpecError(f"--rotate {text!r} is too short: at least {MIN_ROTATE_SECONDS:g} s")
        return Rotation(seconds=seconds)
    if unit.upper() in _SIZE_UNITS and unit:
        size = int(number * _SIZE_UNITS[unit.upper()])
        if size < MIN_ROTATE_BYTES:
            raise SegmentSpecError(f"--rotate {text!r} is too small: at least 1MiB")
        return Rotation(bytes=size)
    raise SegmentSpecError(f"--rotate {text!r}: give a unit, a size (KB, MB, GB, MiB, GiB) or a duration "
                           f"(s, m, h, d), e.g. --rotate 1GB or --rotate 1h")


def parse_keep(text: str) -> Retention:
    """``--keep 24`` (that many closed segments) or ``--keep 7d`` (closed within that long)."""
    number, unit = _number_and_unit("--keep", text)
    if not unit:
        if number != int(number) or number < 1:
            raise SegmentSpecError(f"--keep {text!r}: a count of segments is a whole number of at least 1")
        return Retention(count=int(number))
    if unit in _DURATION_UNITS:
        return Retention(seconds=number * _DURATION_UNITS[unit])
    raise SegmentSpecError(f"--keep {text!r}: give a count of segments (24) or a duration (s, m, h, d: 7d)")


def conn_ids(base: int, worker: int, workers: int) -> tuple[int, int]:
    """The first connection id of ``worker`` (0-based) and the step between its ids: workers take turns,
    so ids stay unique across workers and across every segment of the recording."""
    return base + worker + 1, workers
