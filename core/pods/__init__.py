"""Training on a RunPod GPU pod: the REST client, the launcher, the in-pod agent and the laptop's channel to it."""
