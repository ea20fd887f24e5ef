"""An Adam optimiser built on first use.

Constructing ``torch.optim.Adam`` imports ``torch._dynamo`` (about 3 s on a cold start). A learner
loaded only to act (a backtest, every ``paper step`` process) never steps its optimiser, so it
should not pay for it. :class:`LazyAdam` keeps the parameters and settings, holds a loaded state
until the real optimiser exists, and builds it on the first ``step``, ``zero_grad`` or
``state_dict``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class LazyAdam:
    """``torch.optim.Adam(params, lr=lr)``, constructed when first needed."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3) -> None:
        """``params``: tensors, or parameter-group dicts as torch.optim accepts."""
        self._params = list(params)
        self._lr = lr
        self._opt: torch.optim.Adam | None = None
        self._pending: dict[str, Any] | None = None

    @property
    def optimizer(self) -> torch.optim.Adam:
        """The real Adam, built (and given any pending state) on first access."""
        if self._opt is None:
            self._opt = torch.optim.Adam(self._params, lr=self._lr)
            if self._pending is not None:
                self._opt.load_state_dict(self._pending)
                self._pending = None
        return self._opt

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The real optimiser's parameter groups (building it)."""
        return self.optimizer.param_groups

    def zero_grad(self) -> None:
        """Clear the parameters' gradients, as ``torch.optim.Adam.zero_grad`` does."""
        self.optimizer.zero_grad()

    def step(self) -> None:
        """One Adam step on the parameters' current gradients."""
        self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        """The optimiser's state; a loaded state not yet applied is returned as it was loaded.

        So saving a learner that only acted does not build the optimiser.
        """
        if self._opt is None and self._pending is not None:
            return self._pending
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load ``state`` into the real optimiser, or keep it until the optimiser is built."""
        if self._opt is None:
            self._pending = state
        else:
            self._opt.load_state_dict(state)
