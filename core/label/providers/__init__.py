"""Label providers (floor 1): the registry (base) and the built-in providers, one module each, registered on
import. Each declares its [labeling.NAME] section, key variable and prices, which core.config composes, so they
import floor 0 only (core.sections), never config."""

# The built-ins register themselves on import, in the order the console and the estimate table list them.
# isort: off
from bizsent.core.label.providers import openai
from bizsent.core.label.providers import gemini
from bizsent.core.label.providers import compatible
# isort: on
from bizsent.core.label.providers.base import (
    Provider,
    batch_backend,
    get,
    make_labeler,
    names,
    origins,
    register,
    registered,
    require_key,
    settings_of,
    unregister,
)

__all__ = ["Provider", "batch_backend", "compatible", "gemini", "get", "make_labeler", "names", "openai",
           "origins", "register", "registered", "require_key", "settings_of", "unregister"]
