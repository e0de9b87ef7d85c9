"""``python -m aimass.faults``: see :mod:`aimass.faults.run`."""

from aimass.faults.run import main

raise SystemExit(main())
