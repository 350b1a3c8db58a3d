"""SemCLIP Studio's desktop app: thin Qt views over the Qt-free engine."""

import os

# superqt (through qtpy) and pyqtgraph pick a Qt binding on import; the app is written for
# PySide6, so a PyQt installed beside it must not be picked.
os.environ.setdefault("QT_API", "pyside6")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
