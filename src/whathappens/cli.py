"""Command line: ``whathappens URL`` traces one journey; ``whathappens demo`` runs it offline.

This module only dispatches: each subcommand's arguments and output live in
``whathappens.commands`` (``lab``'s in ``whathappens.lab.command``), imported when that
command runs. argparse, not a heavier framework: a cold start is paid on every run, and the
first packet should leave as early as possible.

What every command shares is the guard around it: Ctrl-C exits 130, a closed pipe quietly,
and a bug of ours is one plain line (exit 10), never a traceback.
"""

from __future__ import annotations

import sys

from whathappens.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK


def _run(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "lab":
        from whathappens.lab.command import lab_main

        lab_code: int = lab_main(argv[1:])
        return lab_code
    if command == "serve":
        from whathappens.commands.serve import serve_main

        return serve_main(argv[1:])
    if command == "demo":
        from whathappens.commands.demo import demo_main

        return demo_main(argv[1:])
    from whathappens.commands.trace import trace_main

    return trace_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug of ours: one plain line, never a traceback
        from whathappens.render.visible import visible

        print(f"whathappens: internal error ({type(exc).__name__}: {visible(str(exc))}); "
              "this is a bug, please report it", file=sys.stderr)
        return EXIT_INTERNAL
