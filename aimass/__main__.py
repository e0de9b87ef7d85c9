"""``python -m aimass``: the ``aimass`` command (for images where the console script is not installed)."""

from aimass.cli import main

raise SystemExit(main())
