"""The model (floor 5): datasets and bundles, loading, QLoRA training, label-token scoring, the pool, active
learning. May import floors 0-4 (store, collect, config, the metrics arithmetic); not evaluation, pods, serving
or labeling. Self-training (selftrain) evaluates each round, so it sits on floor 6 with core.evaluate.
"""
