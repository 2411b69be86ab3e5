"""Benchmarks: the runner (jobs on the queue, resumable, re-used), leaderboard tables, reported numbers.

The service layer where the engine and the store meet for benchmarks, like :mod:`engine.worker` for single jobs.
"""

from .runner import BenchConfig, BenchmarkError, RunReport, collect, run, start

__all__ = ["BenchConfig", "BenchmarkError", "RunReport", "collect", "run", "start"]
