"""``python -m paddlepalm.cli``: the ``palm`` command."""
import sys

from paddlepalm.cli import main

sys.exit(main())
