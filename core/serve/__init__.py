"""Serving a trained run (floor 6): the RunPod serverless worker (handler), the input it accepts, and the client
that calls a deployed endpoint (`bizsent predict --endpoint`). May import floors 0-5 (collect, model); never
the console.
"""
