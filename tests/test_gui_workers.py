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


# -- jobs on superqt's workers, as the panels start them ----------------------------------------

def _collect(worker) -> dict:
    seen: dict = {"events": []}
    worker.progress.connect(lambda e: seen["events"].append(e))
    worker.returned.connect(lambda v: seen.update(returned=v))
    worker.finished.connect(lambda d: seen.update(finished=d))
    worker.failed.connect(lambda e: seen.update(failed=e))
    worker.done.connect(lambda: seen.update(done=True))
    return seen


def test_event_worker_delivers_events_return_value_and_done_in_order(qtbot):
    from engine.events import Done, Progress
    from semclip_gui.workers import EventWorker

    def job(stop):
        for i in range(3):
            yield Progress(i + 1, 3, "embed")
        yield Done({"n": 3})
        return "embeddings"

    worker = EventWorker(job, name="ordered")
    seen = _collect(worker)
    order: list[str] = []
    worker.returned.connect(lambda _v: order.append("returned"))
    worker.finished.connect(lambda _d: order.append("finished"))
    worker.done.connect(lambda: order.append("done"))
    worker.start()
    qtbot.waitUntil(lambda: bool(seen.get("done")), timeout=30_000)
    assert [e.done for e in seen["events"]] == [1, 2, 3]
    assert seen["returned"] == "embeddings" and seen["finished"].result == {"n": 3}
    assert "failed" not in seen and order == ["finished", "returned", "done"]
    assert worker.wait(0) and not worker.running


def test_a_runtime_error_in_a_job_is_a_failure_not_a_silent_end(qtbot):
    # superqt alone takes a RuntimeError from the generator for "worker deleted" and emits
    # nothing: the Train tab would show a run that never ends.
    from semclip_gui.workers import EventWorker

    def job(stop):
        yield from ()
        raise RuntimeError("CUDA out of memory (simulated)")

    worker = EventWorker(job, name="oom")
    seen = _collect(worker)
    worker.start()
    qtbot.waitUntil(lambda: bool(seen.get("done")), timeout=30_000)
    assert seen["failed"].kind == "RuntimeError"
    assert "CUDA out of memory (simulated)" in seen["failed"].message
    assert "finished" not in seen


def test_cancel_sets_the_flag_the_job_polls_and_it_ends_stopped(qtbot):
    from semclip_gui.workers import EventWorker

    started = threading.Event()

    def job(stop):
        started.set()
        while not stop.is_set():
            stop.wait(0.01)
        yield from ()

    worker = EventWorker(job, name="stoppable")
    seen = _collect(worker)
    worker.start()
    assert started.wait(30)
    worker.cancel()
    qtbot.waitUntil(lambda: bool(seen.get("done")), timeout=30_000)
    assert seen["finished"].stopped is True and "failed" not in seen


def test_two_jobs_at_once_leave_the_process_warnings_state_alone(qtbot):
    # superqt's own run() swaps warnings.showwarning per job: when the first of two overlapping
    # jobs ends first, the second restores the first one's hook, which then points at a
    # finished worker for the rest of the process.
    import warnings

    from semclip_gui.workers import EventWorker

    before = (warnings.showwarning, list(warnings.filters))
    entered = [threading.Event(), threading.Event()]
    release = [threading.Event(), threading.Event()]

    def job(i):
        def run(stop):
            entered[i].set()
            warnings.warn("a job's own warning", UserWarning)
            release[i].wait(30)
            yield from ()
        return run

    workers = [EventWorker(job(i), name=f"w{i}") for i in range(2)]
    seen = [_collect(w) for w in workers]
    workers[0].start()
    assert entered[0].wait(30)
    workers[1].start()
    assert entered[1].wait(30)
    release[0].set()
    qtbot.waitUntil(lambda: bool(seen[0].get("done")), timeout=30_000)
    release[1].set()
    qtbot.waitUntil(lambda: bool(seen[1].get("done")), timeout=30_000)
    assert (warnings.showwarning, list(warnings.filters)) == before
    assert all("failed" not in s for s in seen)


def test_short_calls_do_not_queue_behind_long_jobs(qtbot):
    # Two long jobs (a training run and a gallery embedding) must leave room on the pool for a
    # caption generation, on any number of cores.
    from semclip_gui.workers import EventWorker, run_call

    release = threading.Event()
    running = threading.Semaphore(0)

    def long_job(stop):
        running.release()
        release.wait(60)
        yield from ()

    jobs = [EventWorker(long_job, name=f"long{i}") for i in range(3)]
    for job in jobs:
        job.start()
    for _ in jobs:
        assert running.acquire(timeout=30)
    answers: list = []
    run_call(lambda: "four paraphrases", answers.append)
    try:
        qtbot.waitUntil(lambda: bool(answers), timeout=30_000)
    finally:
        release.set()
    assert answers == ["four paraphrases"]
    assert all(job.wait(30_000) for job in jobs)


def test_run_call_hands_errors_and_results_back_on_the_gui_thread(qtbot):
    from semclip_gui.workers import run_call

    threads: list[str] = []
    results: list = []

    def fail():
        raise RuntimeError("model file is truncated")

    run_call(lambda: 42, lambda v: (threads.append(threading.current_thread().name), results.append(v)))
    run_call(fail, results.append,
             lambda e: (threads.append(threading.current_thread().name), results.append(str(e))))
    qtbot.waitUntil(lambda: len(results) == 2, timeout=30_000)
    assert sorted(map(str, results)) == ["42", "model file is truncated"]
    assert set(threads) == {threading.main_thread().name}
