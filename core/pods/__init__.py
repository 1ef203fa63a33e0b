"""Training on a RunPod GPU pod (floor 6): the REST client, the launcher, the brake, the in-pod agent and the
laptop's channel to it. May import floors 0-5 (store, model); the agent (floor 0) imports nothing of bizsent.
"""
