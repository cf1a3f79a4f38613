"""The lab: the production stack the seeds draw, run for real on one machine.

Its parts:

- the stack: a declarative topology (``topology.py``) names hosts with their own loopback
  addresses and the tiers that run on them; each tier's driver (``tier.py``, ``tiers/``: one
  module per program) writes its program's configuration, says which command runs it in the
  foreground and how to tell it is ready, and reads the program's log back for a trace
  (``logs.py``). ``process.py`` starts them detached, records their pids and stops them;
  ``lab.py`` brings a whole lab up, asks how it is and takes it down, recording what it
  started in ``lab.json`` (``manifest.py``); ``running.py`` is the handle on a lab that is
  up. ``install.py`` installs the Debian packages the tiers run; ``command.py`` is the
  ``whathappens lab`` command.
- the site (``site/``): the Django app the app nodes serve, and its Celery tasks.
- the exercises (``exercises/``): drills, experiments, load runs, plots.
- the client bridge (``client/``): ``whathappens URL --lab`` aimed at the lab, and the
  tiers' spans merged into the journey's timeline.
"""
