"""Evaluation: metrics, the text-only baselines and the report."""
