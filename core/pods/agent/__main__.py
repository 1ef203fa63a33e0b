"""The agent's entry: settings from the environment (secrets popped), the earlier start's adapter if the volume
holds one, the GPU check, the watchdog thread, then the HTTP server until the pod ends.

An agent that fails (a bad environment value, a bug) must not end the container: RunPod would start it again, and
again, billing all along. So it stops its own pod with the pod-scoped key; if that fails too, it returns, and the
start command (core/pods/launch.py) keeps the container up, idle, for the laptop or `bizsent pods reap` to end."""

from __future__ import annotations

import os
import sys
import threading
import traceback

from .config import Api, State, load_config, say
from .server import AgentServer
from .trainer import check_gpu_at_boot, recover
from .watchdog import pod_action, watchdog


def serve() -> None:
    cfg = load_config(os.environ)
    (cfg.workdir / "uploads").mkdir(parents=True, exist_ok=True)
    state = State()
    recover(cfg, state)
    if state.phase == "waiting-upload":
        check_gpu_at_boot(cfg, state)
    threading.Thread(target=watchdog, args=(cfg, state), daemon=True, name="watchdog").start()
    server = AgentServer(cfg, state)
    say(f"listening on port {cfg.port}, run folder {cfg.workdir}, state {state.phase}")
    server.serve_forever()


def main() -> None:
    api = Api.from_env(os.environ)  # read before load_config takes the key out of the environment
    try:
        serve()
    except BaseException as exc:  # SystemExit included: a bad setting ends the agent as surely as a bug
        if isinstance(exc, SystemExit):
            print(f"bizsent-agent: {exc}", file=sys.stderr, flush=True)
        else:
            traceback.print_exc()
        say(f"the agent failed ({exc}); stopping the pod so that RunPod does not restart it again and again")
        failed = pod_action(api, "stop")
        if failed:
            say(f"the pod could not stop itself ({failed}); it stays up, idle: `bizsent pods reap` ends it")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
