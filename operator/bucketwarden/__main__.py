"""``python -m bucketwarden``."""

import sys

from bucketwarden.cli import main

sys.exit(main())
