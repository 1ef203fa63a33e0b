"""bizsent's engine, grouped by pipeline stage: store, collect, model, then evaluate / pods / serve, then label;
no UI imports. Floor 0 itself (this file only hides pandas and numpy from sqlite-utils); each subpackage names
its own floor, and the table in bizsent/__init__.py places the loose modules (errors, labels, secure, sections:
floor 0; config and log: floor 2; costs: floor 7).
"""

import sys


def _import_sqlite_utils_lean() -> None:
    # sqlite-utils imports pandas and numpy when they are installed (crowd-kit and torch install them) only to
    # map their scalar types in .insert(); that is 0.3-0.5 s of the console's start-up. bizsent writes through
    # SQL, never .insert() with pandas or numpy values, so sqlite-utils is loaded with both hidden; whoever needs
    # them later (crowd-kit, scoring) imports them as usual.
    if "sqlite_utils" in sys.modules:
        return
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` raise ImportError
    try:
        import sqlite_utils  # noqa: F401
    finally:
        for name in hidden:
            del sys.modules[name]


_import_sqlite_utils_lean()
