"""The app's thread layer: where Python's garbage collector may run."""

from __future__ import annotations

import gc
import threading
import time


def test_garbage_is_collected_on_the_gui_thread_only(qapp, monkeypatch):
    # Not `qtbot`: the suite's fixture turns collection off around qtbot tests by itself.
    from semclip_gui import workers

    monkeypatch.setattr(workers, "_gui_garbage_collector", None)
    freed_on: list[str] = []

    class Cyclic:  # garbage only the cyclic collector can free, like a widget in a lambda cycle
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            freed_on.append(threading.current_thread().name)

    assert gc.isenabled()
    collector = workers.collect_garbage_on_gui_thread()
    try:
        assert not gc.isenabled()
        for _ in range(1000):
            Cyclic()

        def allocate() -> None:  # enough allocations to start an automatic collection here
            junk = [[] for _ in range(100_000)]
            del junk

        worker = threading.Thread(target=allocate, name="pool-worker")
        worker.start()
        worker.join()
        assert freed_on == []  # the worker's allocations collected nothing
        deadline = time.monotonic() + 30
        while len(freed_on) < 1000 and time.monotonic() < deadline:
            qapp.processEvents()
            time.sleep(0.05)
        assert len(freed_on) == 1000 and set(freed_on) == {threading.main_thread().name}
    finally:
        collector.timer.stop()
        gc.enable()
