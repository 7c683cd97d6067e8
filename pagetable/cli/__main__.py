"""`python -m pagetable.cli`: the `pagetable` command."""

import sys

from . import main

sys.exit(main())
