"""Evaluation (floor 6): metrics, the text-only baselines, the report, the runs the console lists, spot-checks.
May import floors 0-5 (store, collect, model); metrics itself is floor 0 (pure arithmetic over the labels).
"""
