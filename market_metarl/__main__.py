"""``python -m market_metarl``."""

import sys

from market_metarl.cli import main

sys.exit(main())
