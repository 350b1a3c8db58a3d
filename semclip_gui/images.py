"""Images as Qt thumbnails, shared by the Playground and Compare tabs."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Optional

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from engine.model.embed_cache import ImageSource

THUMB = 96  # shapes scenes are 64 px: shown larger so small shapes stay readable


def load_thumbnail(source: ImageSource, size: int = THUMB) -> Optional[QImage]:
    """An image (PIL or file) as a ``size``-px QImage, or None if it cannot be read.

    QImage, unlike QPixmap, may be made off the GUI thread: the query job builds thumbnails.
    """
    try:
        with Image.open(source) if isinstance(source, Path) else nullcontext(source) as image:
            rgb = image.convert("RGB")
    except Exception:  # noqa: BLE001 - a file gone or broken since embedding: no thumbnail
        return None
    data = rgb.tobytes()  # must outlive the QImage that borrows it, until copy() owns the pixels
    qimage = QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format_RGB888).copy()
    # nearest-neighbour when enlarging keeps pixel-art shapes crisp; smooth when shrinking photos
    mode = Qt.FastTransformation if max(rgb.size) <= size else Qt.SmoothTransformation
    return qimage.scaled(size, size, Qt.KeepAspectRatio, mode)
