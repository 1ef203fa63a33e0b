"""The model: datasets and bundles, loading, QLoRA training, label-token scoring, self-training, the pool."""
