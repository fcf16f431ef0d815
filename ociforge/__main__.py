"""``python -m ociforge``."""

import sys

from .cli import main

sys.exit(main())
