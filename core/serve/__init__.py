"""Serving a trained run: the RunPod serverless worker (handler), the input it accepts, and the client that calls
a deployed endpoint (`bizsent predict --endpoint`). Nothing here imports the console."""
