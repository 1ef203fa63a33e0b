"""A stand-in for the agent that exits at once, as one that cannot start does (a missing module, a broken Python):
the pod's start command must not let RunPod restart it forever."""

import sys

print("crash agent: exiting at once", flush=True)
sys.exit(3)
