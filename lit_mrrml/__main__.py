"""``python -m lit_mrrml``: see lit_mrrml.cli."""

import sys

from lit_mrrml.cli import main

sys.exit(main())
