"""``python -m bucketwarden``."""

import sys

from bucketwarden.cli import main

if __name__ == "__main__":  # not when multiprocessing's spawn imports this module in a reconcile process
    sys.exit(main())
