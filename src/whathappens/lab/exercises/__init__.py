"""The exercises: what is done *to* a running lab, through the lab's own means.

``drills/`` (``lab break`` / ``lab heal``: the failure modes the seeds describe, done for
real), ``experiments.py`` (``lab experiment``: the comparisons the articles assert,
measured), and what they share: ``load.py`` (bounded load runs), ``https.py`` (HTTPS to the
lab as its clients speak it, Server-Timing) and ``plot.py`` (the experiments' SVG charts).
They reach the lab through its handle (``whathappens.lab.running``).
"""
