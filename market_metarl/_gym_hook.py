"""Register the Gymnasium ids when Gymnasium is loaded, without loading it ourselves.

``import market_metarl`` must make ``gym.make("market_metarl/Trading-v0")`` work, whichever of the
two packages is imported first, yet keep ``market-metarl --help`` free of Gymnasium (and so of
numpy: the command line answers ``--help`` and ``data list`` in a fraction of a second). So:

- Gymnasium already imported: the ids are registered at once;
- not yet: a finder on ``sys.meta_path`` waits for the first ``import gymnasium``, lets it run,
  then registers the ids and removes itself. It touches no other import.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType


def _register() -> None:
    from market_metarl.envs.registration import register_envs

    register_envs()


class _AfterGymnasium(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``gymnasium`` through the other finders, then registers the ids once it has run."""

    def __init__(self) -> None:
        self.spec: importlib.machinery.ModuleSpec | None = None

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """Take over the spec of ``gymnasium`` only (None for every other module)."""
        if fullname != "gymnasium":
            return None
        sys.meta_path.remove(self)
        from importlib.util import find_spec

        spec = find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        self.spec = spec
        wrapped = importlib.machinery.ModuleSpec(
            fullname,
            self,
            origin=spec.origin,
            is_package=spec.submodule_search_locations is not None,
        )
        wrapped.submodule_search_locations = spec.submodule_search_locations
        wrapped.has_location = spec.has_location
        return wrapped

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        """Gymnasium's own loader creates the module."""
        assert self.spec is not None and self.spec.loader is not None
        return self.spec.loader.create_module(self.spec)

    def exec_module(self, module: ModuleType) -> None:
        """Run Gymnasium's own loader, then register the ids."""
        assert self.spec is not None and self.spec.loader is not None
        module.__spec__ = self.spec
        module.__loader__ = self.spec.loader
        self.spec.loader.exec_module(module)
        _register()


def register_when_gymnasium_loads() -> None:
    """Register the ids now if Gymnasium is loaded, else on its first import (idempotent)."""
    if "gymnasium" in sys.modules:
        _register()
    elif not any(isinstance(f, _AfterGymnasium) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterGymnasium())
