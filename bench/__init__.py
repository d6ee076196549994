"""Benchmarks of ddpg_controller side by side with Stable-Baselines3 (``python -m bench``).

Each benchmark writes raw results to ``bench/results/<date>-<name>.json`` (git-ignored) and the
report ``bench/results/<date>.md`` (with PNG plots) is rebuilt from every JSON of that date, so a
subset (``python -m bench update-step``) refreshes only its own section.
"""
