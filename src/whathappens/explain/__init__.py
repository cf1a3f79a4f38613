"""Explanations of each step, written as data: a beginner paragraph and what an expert reads."""
