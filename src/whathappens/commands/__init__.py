"""The commands: their arguments, their output files, one module per subcommand.

``cli.py`` only dispatches to them; each module imports what its command needs when it runs,
so that a cold start pays only for the command it runs (the first packet should leave early).

- ``arguments``: the trace, network, output and limit arguments every tracing command shares,
  and ``options_from`` (the arguments → ``trace.Options``).
- ``output``: writes a journey as JSON, HAR, HTML or the terminal report.
- ``trace``: ``whathappens URL``.
- ``demo``: ``whathappens demo`` (the demo internet itself: ``whathappens.demo``).
- ``serve``: ``whathappens serve`` (the page and its listener: ``whathappens.web``).

``whathappens lab`` parses its own arguments in ``whathappens.lab.command``.
"""
