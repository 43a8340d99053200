"""``python -m regjax sweep``: see :mod:`regjax.cli`."""

from regjax.cli import main

raise SystemExit(main())
