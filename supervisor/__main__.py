"""``python -m supervisor`` works like the ``intentd`` command."""

from supervisor.cli import main

raise SystemExit(main())
