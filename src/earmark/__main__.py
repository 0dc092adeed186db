"""``python -m earmark``: the same as the ``earmark`` command."""

import sys

from earmark.cli import main

sys.exit(main())
