"""Placeholder until the experiments module lands in this session; see the lab issue."""

from __future__ import annotations

import argparse
import sys

from whathappens.lab.tier import LabContext


def main(ctx: LabContext, args: argparse.Namespace) -> int:
    print("whathappens lab: experiments are not built yet", file=sys.stderr)
    return 2
