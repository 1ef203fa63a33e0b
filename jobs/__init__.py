"""Long-running work (floor 8): labeling, batch collection, training, evaluation, pool scoring, pod runs and the
live rounds, each a row in `jobs` with progress and a heartbeat, run detached from the console by
`bizsent <command> --job ID`.

May import the engine (bizsent.core) and itself; never the console (tui) or the command line (cli). Inside:
jobs.states is the vocabulary, the job modules use it, and jobs.kinds registers the kinds (loaded here, first).
"""

from bizsent.jobs import kinds as _kinds  # noqa: F401  # every kind registered before any job is listed or run
