"""User-facing errors: one line that names the thing and says what to do."""


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
