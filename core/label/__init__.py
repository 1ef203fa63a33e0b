"""Auto-labeling with vision LLMs and the human labeling rules (floor 7): planning, the cost ledger and caps,
agreement with the human labels, the human queue. May import floors 0-6. Its providers, labelers and batching
sit on floor 1: config composes the providers' settings, so they import only floor 0 (core.sections).
"""
