"""`python -m rsu_cli` is the `rsu` command."""

import sys

from rsu_cli import main

sys.exit(main())
