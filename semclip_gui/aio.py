"""asyncio inside the Qt event loop (qasync), for async engine calls such as caption generation.

``ensure_event_loop()`` installs one qasync loop driven by Qt's own event loop
(``already_running=True``): coroutines scheduled with ``asyncio.ensure_future`` run whenever Qt
processes events — under ``app.exec()`` in the app and under pytest-qt's waits in tests — so an
awaiting network call never blocks the window.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import qasync
from PySide6.QtWidgets import QApplication

_loop: Optional[asyncio.AbstractEventLoop] = None


def ensure_event_loop() -> asyncio.AbstractEventLoop:
    """The app's asyncio loop (created on first use; needs a QApplication)."""
    global _loop
    if _loop is None or _loop.is_closed():
        app = QApplication.instance()
        if app is None:
            raise RuntimeError("create the QApplication before using asyncio in the app")
        _loop = qasync.QEventLoop(app, already_running=True)
        # Plain Python threads for asyncio.to_thread: qasync's default executor uses QThreads,
        # which Qt reports as "destroyed while running" when the interpreter exits.
        _loop.set_default_executor(ThreadPoolExecutor(max_workers=4, thread_name_prefix="semclip-aio"))
        asyncio.set_event_loop(_loop)
    return _loop


def spawn(coro) -> asyncio.Future:
    """Schedule a coroutine on the app's loop; returns its task (cancel it to abandon it)."""
    return asyncio.ensure_future(coro, loop=ensure_event_loop())
