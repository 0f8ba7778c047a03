"""``python -m medsyn_utils.cli``."""

import sys

from medsyn_utils.cli.app import main

sys.exit(main())
