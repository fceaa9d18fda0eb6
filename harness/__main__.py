"""``python -m harness`` is the ``splitbrain`` command."""

import sys

from harness.cli import main

sys.exit(main())
