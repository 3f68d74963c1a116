"""`python -m kbox` is the same as the `kbox` command."""

from kbox.cli import main

raise SystemExit(main())
