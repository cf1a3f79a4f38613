"""Probes: extra measurements made after the journey, against the server it reached.

They run the drivers (``whathappens.net``) on connections of their own and store what they
find in the journey's facts, never in its spans: the journey's total, steps and HAR stay as
they were. The arithmetic over what they measure is in ``whathappens.analysis``.
"""
