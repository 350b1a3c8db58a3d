"""How late the GUI event loop handles a 10 ms timer: the Train tab logs it after a run, and
``bench/ui_latency.py`` measures it under a training run."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Optional

from PySide6.QtCore import QObject, Qt, QTimer


@dataclass
class LatencyStats:
    """How late the event loop handled the probe's timer, in milliseconds."""

    p95_ms: float
    max_ms: float
    samples: int

    def __str__(self) -> str:
        return f"p95 {self.p95_ms:.0f} ms · max {self.max_ms:.0f} ms"


class LatencyProbe(QObject):
    """A 10 ms timer that records how late each tick fires: the GUI event loop's delay.

    A tick that comes 60 ms after the previous one means the loop could not handle events
    for 50 ms. The max covers everything since :meth:`start`; the 95th percentile the last
    ``window`` ticks (a minute at 10 ms).
    """

    def __init__(self, interval_ms: int = 10, window: int = 6000, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.interval_ms = interval_ms
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._recent: deque[float] = deque(maxlen=window)
        self._max = 0.0
        self._last = 0.0

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        """Forget earlier samples and start measuring."""
        self._recent.clear()
        self._max = 0.0
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def stats(self) -> LatencyStats:
        if not self._recent:
            return LatencyStats(0.0, 0.0, 0)
        ordered = sorted(self._recent)  # not np.percentile: its first call alone takes ~10 ms
        return LatencyStats(ordered[int(0.95 * (len(ordered) - 1))], self._max, len(ordered))

    def _tick(self) -> None:
        now = time.perf_counter()
        late = max(0.0, (now - self._last) * 1000.0 - self.interval_ms)
        self._last = now
        self._recent.append(late)
        self._max = max(self._max, late)
