"""Renderers: each reads the journey's dict (Journey.to_dict) and nothing else."""
