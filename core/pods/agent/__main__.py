"""The agent's entry: settings from the environment (secrets popped), the earlier start's adapter if the volume
holds one, the watchdog thread, then the HTTP server until the pod ends."""

from __future__ import annotations

import os
import threading

from .config import State, load_config, say
from .server import AgentServer
from .trainer import recover
from .watchdog import watchdog


def main() -> None:
    cfg = load_config(os.environ)
    (cfg.workdir / "uploads").mkdir(parents=True, exist_ok=True)
    state = State()
    recover(cfg, state)
    threading.Thread(target=watchdog, args=(cfg, state), daemon=True, name="watchdog").start()
    server = AgentServer(cfg, state)
    say(f"listening on port {cfg.port}, run folder {cfg.workdir}, state {state.phase}")
    server.serve_forever()


if __name__ == "__main__":
    main()
