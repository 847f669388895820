"""The history of runs: every finished run recorded, figures over time, rolling baselines for `compare`."""
