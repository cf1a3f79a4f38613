"""The lab: the production stack the seeds draw, run for real on one machine.

A declarative topology (``topology.py``) names hosts with their own loopback addresses and
the tiers that run on them; each tier (``tiers/``) knows how to write its program's
configuration, which command runs it in the foreground, and how to tell it is ready. The
process layer (``process.py``) starts them detached, records their pids, and stops them.
"""
