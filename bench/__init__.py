"""The benchmark suite (``make bench``, ``make bench-quick``); see ``bench/framework.py``."""
