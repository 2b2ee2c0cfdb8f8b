"""``python -m hypertool.instrumentation.cli``."""

import sys

from hypertool.instrumentation.cli.app import main

sys.exit(main())
