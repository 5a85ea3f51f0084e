"""``python -m supervisor`` works like the ``intentd`` command."""

from supervisor.cli.main import main

raise SystemExit(main())
