"""``python -m whathappens.demo`` is ``python -m whathappens.demo.serve``."""

from __future__ import annotations

import sys

from whathappens.demo.serve import main

sys.exit(main())
