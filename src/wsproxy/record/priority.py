"""A background thread's CPU priority: the writer runs nicer than the relay (``record.writer``)."""

from __future__ import annotations

import os
import sys
import threading


def lower_thread_priority(niceness: int) -> None:
    """Make the calling thread nicer (Linux schedules threads one by one; elsewhere do nothing)."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                           os.getpriority(os.PRIO_PROCESS, 0) + niceness)
        except OSError:  # a sandbox that forbids it: run at normal priority
            pass


