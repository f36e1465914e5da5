"""Experiments as files: a TOML experiment, its sweep of points, the point runners, the executors
(a local process pool or a Dask cluster), the outputs and plots (``vswitch-bench experiment``,
docs/experiments.md)."""
