"""Benchmarks of the matchmaking engine and the server pool, run with ``caroud bench``."""
