"""Analyses: pure functions over the journey whose verdicts every renderer shows."""
