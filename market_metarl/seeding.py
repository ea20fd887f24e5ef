"""One root seed, an independent child seed per component (``SeedSequence`` spawn keys).

Library code takes a ``numpy.random.Generator`` and never touches global RNGs; only the command line
seeds globally (:func:`seed_everything`).
"""

from __future__ import annotations

import numpy as np


def child_seed(seed: int, *path: int) -> int:
    """A deterministic 32-bit seed for the component at ``path`` below ``seed``."""
    return int(np.random.SeedSequence(seed, spawn_key=tuple(path)).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy's legacy global RNG and torch (if imported). CLI only."""
    import random
    import sys

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the one sanctioned global seeding point
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
