"""User-facing errors: one line that names the thing and says what to do."""

# What to do when no trained model exists yet: every "no model" state says it (Eval, Spot-check, Label's
# active-learning order, scoring the pool), so none of them sends a newcomer to another dead end.
NO_MODEL_YET = ("press `m` on Eval or Spot-check for the tiny demo model: built, trained, evaluated and scoring the "
                "pool in about a minute on a CPU, free (`bizsent demo-model`)")


class BizsentError(Exception):
    """An error the user can fix. Its message is shown as one line, never with a traceback."""


class ConfigError(BizsentError):
    pass


class StoreError(BizsentError):
    pass


class ImportFormatError(BizsentError):
    pass


class Cancelled(BizsentError):
    """The user cancelled the job this process runs (its row says 'cancelled'); the work stopped cleanly."""


class Superseded(BizsentError):
    """Another process took over the job this process ran (the row's epoch moved on, jobs.rows): this one stops
    writing as its owner."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} was taken over by another process (a resume or a rerun); this one stopped,"
                         " and what it had in flight is recorded as maybe paid")
        self.job_id = job_id
