"""``python -m engine.cli`` (what torchrun runs)."""

import sys

from engine.cli.commands import main

sys.exit(main())
