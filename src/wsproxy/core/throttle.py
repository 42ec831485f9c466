"""A rate limit for findings shown on a terminal (the recording keeps them all).

Core module: standard library only.
"""

from __future__ import annotations


class Throttle:
    """Rate-limits the findings shown live: per rule, the first ``burst`` in each ``window``
    seconds are shown; the rest are counted and summarised when the window ends.

    Pure: it is told the time. A storm of one finding then costs a few lines per window, while
    a different rule firing in the middle of it still shows at once.
    """

    def __init__(self, burst: int = 5, window: float = 10.0) -> None:
        self.burst = burst
        self.window = window
        self._windows: dict[str, list[float]] = {}  # code -> [window start, shown, not shown]
        self._summaries: list[tuple[str, int]] = []

    def admit(self, code: str, now: float) -> bool:
        """Whether to show this finding now."""
        state = self._windows.get(code)
        if state is None or now - state[0] >= self.window:
            if state is not None and state[2]:
                self._summaries.append((code, int(state[2])))
            self._windows[code] = [now, 1, 0]
            return True
        if state[1] < self.burst:
            state[1] += 1
            return True
        state[2] += 1
        return False

    def due(self, now: float, final: bool = False) -> list[tuple[str, int]]:
        """Summaries to show now: (code, how many of its findings were not shown)."""
        result, self._summaries = self._summaries, []
        for code, state in self._windows.items():
            if state[2] and (final or now - state[0] >= self.window):
                result.append((code, int(state[2])))
                state[2] = 0
        return result
