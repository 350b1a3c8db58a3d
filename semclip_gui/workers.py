"""Run engine jobs off the GUI thread with superqt's workers and hand their events to Qt signals.

* :class:`EventWorker` drives an engine job (``train``, ``evaluate``, ``embed_gallery``...: a
  generator of typed events that polls a stop flag) in a superqt ``GeneratorWorker`` and re-emits
  every event type on its own signal; :meth:`EventWorker.cancel` sets the flag the job polls (a
  cooperative stop: the job saves what it must and ends with ``Done(stopped=True)``).
* :func:`run_call` runs one plain function in a superqt ``FunctionWorker`` and hands its return
  value (or exception) back on the GUI thread. For short jobs: generating captions, loading a
  model, embedding a handful of texts. :class:`LatestOnly` drops stale requests in between.

Both run on Qt's global thread pool; the worker's signal object lives on the GUI thread, so
every slot (lambdas included) runs there and never concurrently with the rest of the UI.

Two project rules sit on top of superqt (:class:`_ProjectRun`): a job's ``RuntimeError`` is a
failure to show (superqt takes it for "the worker was deleted" and ends without a signal, which
would leave the window waiting forever), and the process-wide warnings state is left alone
(superqt wraps each job in ``warnings.catch_warnings``, which two jobs at once restore out of
order, leaving ``warnings.showwarning`` pointing at a finished worker).

Python's cyclic garbage collector runs in whichever thread allocates when a threshold is
crossed. A widget kept in a reference cycle (a lambda slot capturing its owner) would then be
destroyed on a worker thread, and PySide deadlocks there (seen: a model load on the pool
freeing a closed window's menu, the whole app frozen). :func:`collect_garbage_on_gui_thread`
moves collection onto the GUI thread, as pyqtgraph recommends.
"""

from __future__ import annotations

import threading
import traceback
from typing import Any, Callable, Generator, Optional

from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal, Slot
from shiboken6 import isValid
from superqt.utils import FunctionWorker, GeneratorWorker

from engine.events import CheckpointSaved, Done, Error, EvalResult, Log, Progress, StepMetrics

EventFactory = Callable[[threading.Event], Generator]

# A training run holds a pool thread for its whole length: with Qt's default (one thread per
# core, two here) a run plus a gallery embedding would queue every caption generation behind them.
_MIN_POOL_THREADS = 8

# Workers and their signal objects stay referenced here until a timer after their last signal:
# freeing one inside the delivery of its own signal crashes PySide.
_live: set = set()


def _release_later(worker: Any) -> None:
    QTimer.singleShot(0, lambda: _live.discard(worker))


def _start_on_pool(worker: Any) -> None:
    pool = QThreadPool.globalInstance()
    pool.setMaxThreadCount(max(pool.maxThreadCount(), _MIN_POOL_THREADS))
    _live.add(worker)
    # superqt's own end-of-job signal carries the worker, so no closure holds it in a cycle
    worker.signals._finished.connect(_release_later)
    worker.start()


class _ProjectRun:
    """``run()`` for superqt workers: superqt's signal order, without its two pitfalls above."""

    def run(self) -> None:  # called by the thread pool
        self._emit(self.started)
        self._running = True
        try:
            result = self.work()
            if isinstance(result, Exception):  # GeneratorWorker returns RuntimeErrors: re-raise
                raise result
            if not self.abort_requested:
                self._emit(self.returned, result)
        except Exception as exc:  # noqa: BLE001 - delivered to the caller's error slot
            self._emit(self.errored, exc)
        finally:
            self._running = False
            self._emit(self.finished)
            self._emit(self._finished, self)

    def _emit(self, signal: Any, *args: Any) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the app closed while this ran (its signal object is gone)
            if isValid(self.signals):
                raise


class _JobWorker(_ProjectRun, GeneratorWorker):
    pass


class _CallWorker(_ProjectRun, FunctionWorker):
    pass


def _drive(factory: EventFactory, stop: threading.Event, ended: threading.Event) -> Generator:
    """The job as a generator function (what ``GeneratorWorker`` takes); marks its end."""
    try:
        return (yield from factory(stop))
    finally:
        ended.set()


class EventWorker(QObject):
    """Runs ``factory(stop)`` (a generator of engine events) on the thread pool.

    Each event arrives on the GUI thread as one of the signals below. Exactly one of
    ``finished`` / ``failed`` is emitted at the end (an exception escaping the generator becomes
    ``failed``), then ``done``. A generator's ``return`` value (e.g. ``embed_gallery``'s
    embeddings) arrives as ``returned`` before ``finished``.
    """

    progress = Signal(object)  # Progress
    step = Signal(object)  # StepMetrics
    evaluated = Signal(object)  # EvalResult
    checkpoint = Signal(object)  # CheckpointSaved
    log = Signal(object)  # Log
    returned = Signal(object)  # the generator's return value
    finished = Signal(object)  # Done (synthesised for generators that do not yield one)
    failed = Signal(object)  # Error
    done = Signal()  # always last: the job has ended

    def __init__(self, factory: EventFactory, name: str = "job", parent: Optional[QObject] = None):
        super().__init__(parent)
        self.name = name
        self.stop_flag = threading.Event()
        self._generator_ended = threading.Event()
        self._worker = _JobWorker(_drive, factory, self.stop_flag, self._generator_ended)
        self._ended = False
        self.running = False

    def start(self) -> None:
        """Start the job on the thread pool."""
        worker = self._worker
        worker.yielded.connect(self._on_event)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_crash)
        worker.finished.connect(self._on_ended)
        self.running = True
        _live.add(self)  # a job keeps signalling even if its owner forgot it
        _start_on_pool(worker)

    def cancel(self) -> None:
        """Ask the job to stop at its next check (it still ends with finished/failed)."""
        self.stop_flag.set()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the job's generator has ended (for shutdown and tests); its last signals
        may still be queued."""
        if not self.running and not self._ended:
            return True  # never started
        return self._generator_ended.wait(timeout_ms / 1000)

    @Slot(object)
    def _on_event(self, event: object) -> None:
        if isinstance(event, StepMetrics):
            self.step.emit(event)
        elif isinstance(event, EvalResult):
            self.evaluated.emit(event)
        elif isinstance(event, CheckpointSaved):
            self.checkpoint.emit(event)
        elif isinstance(event, Progress):
            self.progress.emit(event)
        elif isinstance(event, Log):
            self.log.emit(event)
        elif isinstance(event, Done) and not self._ended:
            self._ended = True
            self.finished.emit(event)
        elif isinstance(event, Error) and not self._ended:
            self._ended = True
            self.failed.emit(event)

    @Slot(object)
    def _on_returned(self, value: object) -> None:
        if value is not None:
            self.returned.emit(value)

    @Slot(object)
    def _on_crash(self, exc: object) -> None:
        if not self._ended:
            self._ended = True
            detail = "".join(traceback.format_exception(exc, limit=4))
            self.failed.emit(Error(kind=type(exc).__name__, message=f"{exc}\n\n{detail}"))

    @Slot()
    def _on_ended(self) -> None:
        if not self._ended:
            self._ended = True
            self.finished.emit(Done(stopped=self.stop_flag.is_set()))
        self.running = False
        self.done.emit()
        _release_later(self)


def _ignore(_exc: BaseException) -> None:
    pass


def run_call(fn: Callable[[], Any], on_result: Callable[[Any], None],
             on_error: Optional[Callable[[BaseException], None]] = None) -> None:
    """Run ``fn()`` on the global thread pool; call ``on_result``/``on_error`` on the GUI thread.

    Must be called from the GUI thread.
    """
    worker = _CallWorker(fn)
    worker.returned.connect(on_result)
    worker.errored.connect(on_error or _ignore)
    _start_on_pool(worker)


class LatestOnly:
    """Runs calls one at a time, dropping all but the newest request made while one runs.

    For typing-driven work (generations, re-scoring): results of stale requests are not worth
    computing, and the newest request always gets an answer.
    """

    def __init__(self, owner: Optional[QObject] = None) -> None:
        """``owner``: the widget the results are for; once Qt has deleted it (a closed window),
        results are dropped instead of drawn into deleted widgets."""
        self._owner = owner
        self._busy = False
        self._pending: Optional[tuple] = None

    @property
    def busy(self) -> bool:
        return self._busy

    def submit(self, fn: Callable[[], Any], on_result: Callable[[Any], None],
               on_error: Optional[Callable[[BaseException], None]] = None) -> None:
        if self._busy:
            self._pending = (fn, on_result, on_error)
            return
        self._busy = True

        def finish(callback, value):
            self._busy = False
            if self._owner is not None and not isValid(self._owner):
                self._pending = None
                return
            try:
                if callback is not None:
                    callback(value)
            finally:
                if self._pending is not None:
                    pending, self._pending = self._pending, None
                    self.submit(*pending)

        run_call(fn, lambda v: finish(on_result, v), lambda e: finish(on_error, e))


_gui_garbage_collector = None


def collect_garbage_on_gui_thread() -> Any:
    """Turn off automatic garbage collection and collect on a GUI-thread timer instead.

    Call once, after the QApplication exists; further calls return the same collector (a
    pyqtgraph ``GarbageCollector``, whose ``timer`` runs the collections).
    """
    global _gui_garbage_collector
    if _gui_garbage_collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _gui_garbage_collector = GarbageCollector(interval=1.0)
    return _gui_garbage_collector


def wait_for_background_jobs(timeout_ms: int = 30_000) -> bool:
    """Block until every :func:`run_call` job has finished (at shutdown, and between tests)."""
    return QThreadPool.globalInstance().waitForDone(timeout_ms)
