"""Writing a journey out: ``--json`` on stdout, ``--har FILE``, ``--html FILE``, else the
terminal report.

The journey arrives as its dictionary (``Journey.to_dict()``, the JSON contract): every
output is made from that one dict. A file that cannot be written is said on stderr and the
others are still written; the journey's exit code is not changed by it.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO


def render(journey_dict: dict[str, object], args: argparse.Namespace, out: TextIO) -> None:
    """Write the journey as the output arguments ask (see ``add_output_arguments``)."""
    if getattr(args, "har", None):
        import json

        from whathappens.render.har import to_har
        from whathappens.render.visible import escape_json

        try:
            with open(args.har, "w", encoding="utf-8") as f:
                # C1, bidi and invisible characters as \u escapes: `cat` must not obey them
                f.write(escape_json(json.dumps(to_har(journey_dict), indent=2,
                                               ensure_ascii=False)))
        except OSError as exc:
            print(f"whathappens: cannot write {args.har}: {exc.strerror}", file=sys.stderr)
    if getattr(args, "html", None):
        from whathappens.render.html import render_html

        try:
            with open(args.html, "w", encoding="utf-8") as f:
                f.write(render_html(journey_dict))
        except OSError as exc:
            print(f"whathappens: cannot write {args.html}: {exc.strerror}", file=sys.stderr)
    if args.json:
        import json

        from whathappens.render.visible import escape_json

        # ensure_ascii=False keeps names readable; escape_json still writes what a terminal
        # could obey (DEL, C1, bidi and invisible characters) as \u escapes, same values
        out.write(escape_json(json.dumps(journey_dict, indent=2, ensure_ascii=False)))
        out.write("\n")
        return
    from whathappens.render.terminal import render_terminal

    color = not args.no_color and out.isatty() and "NO_COLOR" not in os.environ
    render_terminal(journey_dict, out, explain=args.explain, color=color, width=args.width)
