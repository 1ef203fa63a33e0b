"""RunPod: the REST v2 client, pod launch and cleanup (laptop side), and the in-pod agent."""
