"""``python -m endolite.cli``: the same as the ``endolite`` command."""

import sys

from endolite.cli import main

sys.exit(main())
