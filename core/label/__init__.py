"""Auto-labeling with vision LLMs: the labelers, the cost ledger and caps, agreement with the human labels."""
