"""Silence the messages that building one of our models always prints, and only those.

Building a model through open_clip prints, for every demo model and checkpoint:

* transformers' weight-load report for the Hugging Face text tower ("BertModel LOAD REPORT ...
  pooler.dense.weight | UNEXPECTED"): open_clip's tower has no pooler, so the checkpoint's
  pooler is always left over. Expected, and harmless. A report that lists MISSING or MISMATCHED
  keys (a tower left partly random) is a real problem and stays visible.
* transformers' "Loading weights" progress bar.
* open_clip's "No pretrained weights loaded for model X. Model initialized randomly." / "Model X
  initialized partially." Expected when our own weights are loaded right after (a delta
  export over its base) or when the model is one of the project's configs, random or partial by
  design. For a bare OpenCLIP architecture (``ViT-B-32`` without a tag) it is the user's only
  hint that the weights are random, so it stays.

:func:`quiet_model_construction` drops exactly these, from the thread that builds the model and
only while it does: the app builds two models on two threads at once, and anything another
thread logs meanwhile passes untouched.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

OPEN_CLIP_INIT_MESSAGES = ("Model initialized randomly.", "initialized partially.")
TRANSFORMERS_LOGGER = "transformers.modeling_utils"  # where from_pretrained's report is logged
# transformers >= 5: a table of keys and statuses; 4.x: sentences.
_UNUSED_KEYS = ("UNEXPECTED", "were not used when initializing")
_REAL_PROBLEMS = ("MISSING", "MISMATCH", "newly initialized", "CONVERSION")

_lock = threading.Lock()
_scopes: dict[int, list[bool]] = {}  # thread id -> random_init_expected of its open scopes
_progress_bar_was_enabled = True


def _expected(record: logging.LogRecord) -> bool:
    scopes = _scopes.get(record.thread)
    if not scopes:
        return False
    message = record.getMessage()
    if record.name == TRANSFORMERS_LOGGER:
        return any(s in message for s in _UNUSED_KEYS) and \
            not any(s in message for s in _REAL_PROBLEMS)
    return any(scopes) and message.endswith(OPEN_CLIP_INIT_MESSAGES)


class _DropExpected(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _expected(record)


_FILTER = _DropExpected()
# open_clip logs through the root logger (``logging.warning``).
_LOGGERS = (logging.getLogger(), logging.getLogger(TRANSFORMERS_LOGGER))


def _set_transformers_progress_bar(enabled: Optional[bool]) -> Optional[bool]:
    """Turn transformers' progress bars on or off; returns the previous state (None: no
    transformers)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return None
    before = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    return before


@contextmanager
def quiet_model_construction(random_init_expected: bool = False) -> Iterator[None]:
    """Drop the expected load messages (see the module docstring) logged by this thread inside.

    ``random_init_expected``: also drop open_clip's "initialized randomly/partially" warnings
    (our weights follow, or the config is random by design). Nested and concurrent scopes are
    fine: the filters are installed by the first scope to open and removed by the last to close.
    """
    global _progress_bar_was_enabled
    thread = threading.get_ident()
    with _lock:
        if not _scopes:
            for logger in _LOGGERS:
                logger.addFilter(_FILTER)
            _progress_bar_was_enabled = _set_transformers_progress_bar(False) is not False
        _scopes.setdefault(thread, []).append(random_init_expected)
    try:
        yield
    finally:
        with _lock:
            _scopes[thread].pop()
            if not _scopes[thread]:
                del _scopes[thread]
            if not _scopes:
                for logger in _LOGGERS:
                    logger.removeFilter(_FILTER)
                if _progress_bar_was_enabled:
                    _set_transformers_progress_bar(True)
