"""Run engine jobs off the GUI thread and turn their events into Qt signals.

Two kinds of background work, in the style of napari/superqt's thread workers:

* :class:`EventWorker` — drives an engine *event generator* (``train``, ``evaluate``,
  ``embed_gallery``...) in its own ``QThread``; every event type has its own signal, and
  :meth:`EventWorker.cancel` sets the ``threading.Event`` the generator polls (a cooperative
  stop: the job saves what it must and ends with ``Done(stopped=True)``).
* :func:`run_call` — runs one plain function on the shared thread pool and delivers its return
  value (or exception) back on the GUI thread. For short jobs: generating captions, loading a
  model, embedding a handful of texts.

Signals are emitted from the worker thread; Qt queues them to receivers living on the GUI
thread, so slots never run concurrently with the rest of the UI.

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

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Qt, QTimer, Signal, Slot
from shiboken6 import isValid

from engine.events import CheckpointSaved, Done, Error, EvalResult, Log, Progress, StepMetrics

EventFactory = Callable[[threading.Event], Generator]
_live: set = set()  # running workers, kept alive until they end


class _Runner(QObject):
    """Lives in the worker thread and pulls events out of the generator."""

    event = Signal(object)
    returned = Signal(object)
    crashed = Signal(object)
    ended = Signal()

    def __init__(self, factory: EventFactory, stop_flag: threading.Event):
        super().__init__()
        self._factory, self._stop = factory, stop_flag

    @Slot()
    def run(self) -> None:
        try:
            gen = self._factory(self._stop)
            while True:
                try:
                    event = next(gen)
                except StopIteration as stop:
                    if stop.value is not None:
                        self.returned.emit(stop.value)
                    break
                self.event.emit(event)
        except Exception as exc:  # noqa: BLE001 - shown in the window, never a silent crash
            detail = traceback.format_exc(limit=4)
            self.crashed.emit(Error(kind=type(exc).__name__, message=f"{exc}\n\n{detail}"))
        finally:
            self.ended.emit()


class EventWorker(QObject):
    """Runs ``factory(stop)`` — a generator of engine events — in a dedicated QThread.

    The worker object itself stays on the GUI thread: a runner in the QThread hands each event
    over a queued connection, and the worker re-emits it as one of the signals below, so any slot
    (lambdas included) runs on the GUI thread. Exactly one of ``finished`` / ``failed`` is emitted
    at the end (an exception escaping the generator becomes ``failed``), then ``done``. A
    generator's ``return`` value (e.g. ``embed_gallery``'s embeddings) arrives as ``returned``
    before ``finished``.
    """

    progress = Signal(object)  # Progress
    step = Signal(object)  # StepMetrics
    evaluated = Signal(object)  # EvalResult
    checkpoint = Signal(object)  # CheckpointSaved
    log = Signal(object)  # Log
    returned = Signal(object)  # the generator's return value
    finished = Signal(object)  # Done (synthesised for generators that do not yield one)
    failed = Signal(object)  # Error
    done = Signal()  # always last: the thread has finished its work

    def __init__(self, factory: EventFactory, name: str = "job", parent: Optional[QObject] = None):
        super().__init__(parent)
        self.name = name
        self.stop_flag = threading.Event()
        self._runner = _Runner(factory, self.stop_flag)
        self._thread: Optional[QThread] = None
        self._ended = False
        self.running = False

    def start(self) -> None:
        """Start the job in a new QThread."""
        thread = QThread()
        thread.setObjectName(f"semclip-{self.name}")
        self._runner.moveToThread(thread)
        thread.started.connect(self._runner.run)
        self._runner.event.connect(self._on_event)
        self._runner.returned.connect(self.returned)
        self._runner.crashed.connect(self._on_crash)
        # quit() is thread-safe: a direct call from the worker thread ends its event loop at once
        self._runner.ended.connect(thread.quit, Qt.DirectConnection)
        self._runner.ended.connect(self._on_ended)
        self._thread = thread
        self.running = True
        _live.add(self)  # a job keeps running (and signalling) even if its owner forgot it
        thread.start()

    def cancel(self) -> None:
        """Ask the job to stop at its next check (it still ends with finished/failed)."""
        self.stop_flag.set()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the thread ended (for shutdown and tests); queued signals still pending."""
        return self._thread.wait(timeout_ms) if self._thread is not None else True

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
    def _on_crash(self, error: object) -> None:
        if not self._ended:
            self._ended = True
            self.failed.emit(error)

    @Slot()
    def _on_ended(self) -> None:
        if not self._ended:
            self._ended = True
            self.finished.emit(Done(stopped=self.stop_flag.is_set()))
        self.running = False
        if self._thread is not None:
            self._thread.wait(5_000)
        self.done.emit()
        # Let go of ourselves only after this slot has returned: a QObject freed inside its
        # own slot crashes PySide.
        QTimer.singleShot(0, lambda: _live.discard(self))


class _Dispatcher(QObject):
    """One long-lived object on the GUI thread through which pool jobs hand back their results.

    A per-call QObject that drops its last reference inside its own slot is destroyed while
    Qt is still delivering to it, which crashes PySide; one dispatcher that outlives every
    call avoids that whole class of bug.
    """

    deliver = Signal(object, object)  # callback, value

    @Slot(object, object)
    def _deliver(self, callback: Callable[[Any], None], value: Any) -> None:
        callback(value)


_dispatcher: Optional[_Dispatcher] = None


def _gui_dispatcher() -> _Dispatcher:
    global _dispatcher
    if _dispatcher is None:  # created on the GUI thread: run_call is only called from there
        _dispatcher = _Dispatcher()
        _dispatcher.deliver.connect(_dispatcher._deliver, Qt.QueuedConnection)
    return _dispatcher


class _Call(QRunnable):
    def __init__(self, fn: Callable[[], Any], on_result: Callable[[Any], None],
                 on_error: Callable[[BaseException], None]):
        super().__init__()
        self.fn, self.on_result, self.on_error = fn, on_result, on_error
        self.dispatcher = _gui_dispatcher()
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            value = self.fn()
        except Exception as exc:  # noqa: BLE001 - delivered to the caller's error callback
            self._hand_back(self.on_error, exc)
        else:
            self._hand_back(self.on_result, value)

    def _hand_back(self, callback: Callable[[Any], None], value: Any) -> None:
        try:
            self.dispatcher.deliver.emit(callback, value)
        except RuntimeError:  # the app closed while this ran (its dispatcher is gone): no one waits
            if isValid(self.dispatcher):
                raise


def _ignore(_exc: BaseException) -> None:
    pass


def run_call(fn: Callable[[], Any], on_result: Callable[[Any], None],
             on_error: Optional[Callable[[BaseException], None]] = None) -> None:
    """Run ``fn()`` on the global thread pool; call ``on_result``/``on_error`` on the GUI thread.

    Must be called from the GUI thread.
    """
    QThreadPool.globalInstance().start(_Call(fn, on_result, on_error or _ignore))


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
