"""Which system libraries Qt needs on Linux, and the one ``apt-get`` line that installs them.

PySide6's wheels bundle Qt itself but not the system libraries Qt's GUI module and its xcb
(X11) platform plugin link against. When one is missing, Qt names only the first
("xcb-cursor0 or libxcb-cursor0 is needed"); install it and the next one fails the same way.
This module checks every one of them before Qt is imported and names all missing Debian/Ubuntu
packages at once. It never imports Qt, so it runs (and is tested) where Qt cannot load.

The lists come from ``readelf -d`` (NEEDED) on PySide6's ``libQt6Gui``, ``libQt6DBus``,
``libQt6XcbQpa`` and ``plugins/platforms/libqxcb.so``, minus what the wheel bundles and what
every Debian system has (libc, libstdc++, zlib, zstd); each soname maps to its package by
``dpkg -S``.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Callable, Mapping, Optional, Sequence

# soname -> Debian/Ubuntu package; needed by QtGui whatever the platform plugin
QT_GUI_LIBRARIES: dict[str, str] = {
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11.so.6": "libx11-6",
}
# soname -> package; needed by the xcb (X11) platform plugin on top of the above
XCB_LIBRARIES: dict[str, str] = {
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb.so.1": "libxcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
}
# The README's first command installs these, plus python3-venv for ``python3 -m venv``.
README_PACKAGES: tuple[str, ...] = ("python3-venv", *dict.fromkeys(
    [*QT_GUI_LIBRARIES.values(), *XCB_LIBRARIES.values()]))

Loader = Callable[[str], bool]


def can_load(soname: str) -> bool:
    """Whether the dynamic linker finds and loads ``soname`` (with its own dependencies)."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def uses_xcb(env: Mapping[str, str], platform: str) -> bool:
    """Whether Qt will pick its xcb (X11) platform plugin under ``env`` on ``platform``."""
    if not platform.startswith("linux"):
        return False
    requested = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if requested:
        return requested == "xcb"
    # Qt 6 prefers Wayland in a Wayland session; without a display xcb fails on its own terms.
    return bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def missing_packages(env: Mapping[str, str], platform: str,
                     loader: Optional[Loader] = None) -> list[str]:
    """Packages (in install order, each once) whose libraries Qt needs here but cannot load.

    ``loader`` tells whether a soname loads (default: :func:`can_load`).
    """
    if not platform.startswith("linux"):
        return []
    loader = loader or can_load
    needed = dict(QT_GUI_LIBRARIES)
    if uses_xcb(env, platform):
        needed.update(XCB_LIBRARIES)
    return list(dict.fromkeys(pkg for soname, pkg in needed.items() if not loader(soname)))


def install_command(packages: Sequence[str], as_root: bool = False) -> str:
    """The ``apt-get install`` line for ``packages`` (with ``sudo`` unless already root)."""
    return ("" if as_root else "sudo ") + "apt-get install -y " + " ".join(packages)


def missing_libraries_message(env: Optional[Mapping[str, str]] = None,
                              platform: Optional[str] = None,
                              loader: Optional[Loader] = None) -> Optional[str]:
    """What to tell the user when Qt's system libraries are missing; None when all load."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    packages = missing_packages(env, platform, loader)
    if not packages:
        return None
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    return ("semclip-gui: Qt cannot start, system libraries are missing "
            f"({', '.join(packages)}). On Debian/Ubuntu install them with:\n\n"
            f"    {install_command(packages, as_root)}\n")
