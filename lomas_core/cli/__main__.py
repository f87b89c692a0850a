"""``python -m lomas_core.cli``: the same as the ``lomas`` command."""

import sys

from lomas_core.cli import main

sys.exit(main())
