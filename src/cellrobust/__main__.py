"""``python -m cellrobust`` is the same as the ``cellrobust`` command."""

import sys

from cellrobust.cli import main

sys.exit(main())
