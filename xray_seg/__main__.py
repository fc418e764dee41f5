"""Allow ``python -m xray_seg``."""

import sys

from xray_seg.cli import main

sys.exit(main())
