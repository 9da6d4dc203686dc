"""``python -m wslab``: the same as the ``wslab`` script."""

from wslab.cli import main

raise SystemExit(main())
