"""Placeholder until the drills module lands in this session; see the lab issue."""

from __future__ import annotations

import argparse
import sys

from whathappens.lab.tier import LabContext


def main(ctx: LabContext, args: argparse.Namespace) -> int:
    print("whathappens lab: drills are not built yet", file=sys.stderr)
    return 2
