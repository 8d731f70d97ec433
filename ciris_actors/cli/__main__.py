"""``python -m ciris_actors.cli``: the ``ciris-actors`` command."""

import sys

from ._parser import main

sys.exit(main())
