"""``python -m whathappens.lab.exercises.drills hold-lock ADDRESS PORT SECONDS``: the slow-db
drill's lock holder."""

from __future__ import annotations

import sys

from whathappens.lab.exercises.drills import _cli

sys.exit(_cli(sys.argv[1:]))
