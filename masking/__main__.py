"""`python -m masking` runs the CLI."""

import sys

from masking.cli import main

sys.exit(main())
