"""The system clock."""

from __future__ import annotations

import time


class SystemClock:
    """Wall-clock time from the operating system."""

    def now_ms(self) -> int:
        """Current time, epoch milliseconds UTC."""
        return time.time_ns() // 1_000_000
