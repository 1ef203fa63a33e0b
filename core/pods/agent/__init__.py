"""The in-pod agent (floor 0): the one process a training pod runs. It
starts from the pod's environment before anything of
bizsent is installed, so it is standard library only and imports nothing from bizsent (only its own modules,
relatively): the laptop ships this folder to the pod as a zipapp (core/pods/payload.py `agent_b64`).

It receives the uploads the laptop sends through RunPod's HTTP proxy (the project wheel, the dataset bundle,
job.json) in resumable, checksummed chunks (uploads.py); installs the wheel into WORKDIR/site and trains with
`python -m bizsent train --local` (trainer.py); and serves health, the log tail, metric events and the adapter tar
(server.py). A watchdog thread (watchdog.py) stops or terminates a pod whose laptop went away (docs/pods.md,
"Inside the pod"). __main__.py starts it all from the environment.
"""
