"""whathappens: what happens when you hit a URL, performed, measured and explained."""

__version__ = "0.1.0"
