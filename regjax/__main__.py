"""``python -m regjax sweep``: see :mod:`regjax.cli`."""

from regjax.experiment.cli import main

raise SystemExit(main())
