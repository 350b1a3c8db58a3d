"""How late the app's event loop handles events while the Train tab trains (the "UI latency").

    QT_QPA_PLATFORM=offscreen python bench/ui_latency.py             # tiny shapes run, 3 repeats
    python bench/ui_latency.py --scenes 2048 --repeats 5              # longer runs, on a screen

Each repeat opens the Train panel (shown, so redraws cost what they cost in the app), starts a
tiny shapes run (``semclip-shapes-tiny``, batch 16, CPU, one core left to the UI as the app
does) and records, with the panel's own :class:`LatencyProbe`, how late a 10 ms timer fires:
the 95th percentile and max of the delay, and the ticks per second against an idle baseline
measured just before. The figure depends on the machine's load, so the load average (as
``uptime`` prints it) is printed before and after; a quiet 2-core machine gave p95 and max
under 50 ms. The test suite checks only what does not depend on load
(``tests/test_gui_train.py::test_the_event_loop_keeps_running_while_training``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from semclip_gui.state import AppState
from semclip_gui.latency import LatencyProbe, LatencyStats
from semclip_gui.train_panel import TrainPanel

IDLE_MS = 1000


def load_line() -> str:
    """``uptime``'s line (load averages over 1, 5, 15 minutes), or os.getloadavg() without it."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def wait(ms: int) -> None:
    """Run the event loop for ``ms`` milliseconds."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def one_run(panel: TrainPanel, out_dir: Path, scenes: int) -> tuple[LatencyStats, float, float]:
    """(latency during the run, idle ticks/s, ticks/s during the run) for one tiny run."""
    idle = LatencyProbe(parent=panel)
    t0 = time.perf_counter()
    idle.start()
    wait(IDLE_MS)
    idle.stop()
    idle_rate = idle.stats().samples / (time.perf_counter() - t0)

    panel.apply_preset("tiny demo (fast)")
    panel.form.model_combo.setCurrentText("semclip-shapes-tiny")
    panel.form.scenes_spin.setValue(scenes)
    panel.form.eval_scenes_spin.setValue(16)
    panel.form.batch_spin.setValue(16)
    panel.form.epochs_spin.setValue(1)
    panel.form.device_combo.setCurrentIndex(panel.form.device_combo.findData("cpu"))
    panel.form.out_dir_edit.setText(str(out_dir))
    loop = QEventLoop()
    panel.run_finished.connect(loop.quit)
    t0 = time.perf_counter()
    if not panel.start():
        sys.exit(f"the run did not start: {panel.error_label.text()}")
    loop.exec()
    panel.run_finished.disconnect(loop.quit)
    stats = panel.latency_probe.stats()
    return stats, idle_rate, stats.samples / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=512, help="scenes per run (16 per step)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    app = QApplication.instance() or QApplication(sys.argv[:1])  # noqa: F841 - kept alive
    panel = TrainPanel(AppState())
    panel.resize(1200, 720)
    panel.show()
    print(f"before: {load_line()}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            stats, idle_rate, run_rate = one_run(panel, Path(tmp) / f"run{repeat}", args.scenes)
            results.append(stats)
            print(f"run {repeat + 1}: UI latency {stats} ({stats.samples} ticks); timer "
                  f"{run_rate:.0f} ticks/s while training vs {idle_rate:.0f} idle")
    panel.shutdown()
    print(f"after:  {load_line()}")
    print(f"median over {len(results)} runs: p95 "
          f"{statistics.median(s.p95_ms for s in results):.0f} ms, max "
          f"{statistics.median(s.max_ms for s in results):.0f} ms")


if __name__ == "__main__":
    main()
