"""Plugins: packages that register teacher backends, question sources, judges or training methods through the
same registries the built-ins use. The lab (``cotdistill.lab``) is one; a third-party package adds an entry point
in the ``cotdistill.plugins`` group naming a ``register()`` function (see ``docs/architecture.md``)."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from cotdistill.errors import CotdistillError

GROUP = "cotdistill.plugins"
BUILTIN = ("cotdistill.lab:register",)
_loaded = False


def load_plugins() -> None:
    """Call every plugin's ``register()`` once per process: the built-in lab first, then the entry points."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    targets = list(BUILTIN) + [ep.value for ep in entry_points(group=GROUP) if ep.value not in BUILTIN]
    for target in targets:
        module, _, fn = target.partition(":")
        try:
            register = getattr(importlib.import_module(module), fn or "register")
        except (ImportError, AttributeError) as e:
            raise CotdistillError(f"plugin '{target}' ({GROUP}) cannot be loaded: {e}") from None
        register()
