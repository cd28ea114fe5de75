"""``python -m sbcore``: the same command line as the ``sbcore`` script."""
import sys

from sbcore.cli import main

sys.exit(main())
