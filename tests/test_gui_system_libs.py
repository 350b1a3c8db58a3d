"""Start-up check for Qt's system libraries: a bare Debian/Ubuntu machine gets one install line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import semclip_gui.__main__ as entry
from semclip_gui import system_libs
from semclip_gui.system_libs import (QT_GUI_LIBRARIES, README_PACKAGES, XCB_LIBRARIES,
                                     missing_libraries_message, missing_packages, uses_xcb)

ROOT = Path(__file__).resolve().parents[1]
X11 = {"DISPLAY": ":0"}


def loader_without(*absent: str):
    """A fake dynamic linker that loads every soname but ``absent``."""
    return lambda soname: soname not in absent


def test_a_missing_library_is_named_by_its_package_in_one_install_line():
    message = missing_libraries_message(X11, "linux", loader_without("libxcb-icccm.so.4",
                                                                     "libxcb-keysyms.so.1"))
    assert message is not None
    assert "apt-get install -y libxcb-icccm4 libxcb-keysyms1\n" in message
    assert "libxcb-cursor0" not in message  # only what is missing, not Qt's usual first guess


def test_all_libraries_present_means_no_message():
    assert missing_libraries_message(X11, "linux", loader_without()) is None


def test_a_library_two_sonames_share_is_named_once():
    glib = ("libglib-2.0.so.0", "libgthread-2.0.so.0")
    assert missing_packages(X11, "linux", loader_without(*glib)) == ["libglib2.0-0"]


@pytest.mark.parametrize("env, platform, xcb", [
    ({"DISPLAY": ":0"}, "linux", True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux", True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux", False),
    ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
    ({}, "linux", False),
    ({"DISPLAY": ":0"}, "darwin", False),
    ({"DISPLAY": ":0"}, "win32", False),
])
def test_xcb_libraries_are_checked_only_when_qt_will_use_xcb(env, platform, xcb):
    assert uses_xcb(env, platform) is xcb
    missing = missing_packages(env, platform, loader_without(*XCB_LIBRARIES))
    assert bool(missing) is xcb


def test_qt_gui_libraries_are_checked_on_linux_whatever_the_platform_plugin():
    env = {"QT_QPA_PLATFORM": "offscreen"}
    assert missing_packages(env, "linux", loader_without("libEGL.so.1")) == ["libegl1"]
    assert missing_packages(env, "darwin", loader_without("libEGL.so.1")) == []


def test_semclip_gui_exits_non_zero_with_the_install_line(monkeypatch, capsys):
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(system_libs, "can_load", loader_without("libxcb-cursor.so.0"))
    assert entry.main([]) == entry.EXIT_MISSING_LIBRARIES != 0
    assert "apt-get install -y libxcb-cursor0\n" in capsys.readouterr().err


def test_the_check_runs_without_importing_qt():
    code = ("import sys, semclip_gui.__main__\n"
            "print(sorted(m for m in sys.modules if m.startswith('PySide6')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_the_readme_installs_every_package_the_check_can_ask_for():
    first_block = (ROOT / "README.md").read_text().split("```bash\n", 1)[1].split("\n```")[0]
    apt_line = first_block.split(" && ")[1]
    assert apt_line.startswith("sudo apt-get install -y ")
    assert apt_line.split()[4:] == list(README_PACKAGES)
    assert set(README_PACKAGES) >= {*QT_GUI_LIBRARIES.values(), *XCB_LIBRARIES.values()}
