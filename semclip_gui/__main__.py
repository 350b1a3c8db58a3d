"""``semclip-gui`` / ``python -m semclip_gui``: check Qt's system libraries, then open the app.

The check runs before anything imports PySide6: a missing system library makes that import
(or Qt's platform plugin) fail with a message that names only one of them.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from .system_libs import missing_libraries_message

EXIT_MISSING_LIBRARIES = 3


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Open SemCLIP Studio; exit with :data:`EXIT_MISSING_LIBRARIES` and the install line if
    Qt's system libraries are missing."""
    message = missing_libraries_message()
    if message:
        print(message, file=sys.stderr)
        return EXIT_MISSING_LIBRARIES
    from .app import main as run_app  # imports Qt
    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
