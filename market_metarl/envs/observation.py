"""The one observation builder: the current position plus a causal window of features.

Stateless once built: ``build(t, position)`` is a pure function of the decision day ``t`` and the
weights held at its close. The feature block holds feature rows ``t-window+1 .. t`` only (rows
before the first bar are zeros), and features at row ``t`` depend on bars dated ``<= t``
(:mod:`market_metarl.data.features`), so nothing after the close of ``t`` is ever seen.

Layout of the flat float32 vector (N assets, F features, W = window, S = N + include_time):

    obs[:N]                          weights held at the close of t (after their drift)
    obs[N]                           (include_time only) (t - first) / (last - first), in [0, 1]
    obs[S:].reshape(W, N, F)         features, oldest day first, day t last

How it is fast: the features are stored time-major and zero-padded (``W - 1`` rows in front of each
task), so the S state slots plus the window ending at ``t`` are one contiguous run of memory that
starts S floats before the window (those S floats are zero padding or earlier rows of the same
task, never later ones, and are overwritten with the state). ``windows`` is a read-only strided view over that buffer (no copy when
the builder is made), and one observation, or a batch of them, is a single block gather followed
by S column writes. ``build`` and ``build_batch`` return new arrays, never views.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

OBS_BOUND = np.float32(np.inf)


def _window_view(features: Sequence[np.ndarray], window: int, slots: int) -> np.ndarray:
    """Windows ``(B, T_max, slots + window*N*F)`` over B tasks' ``(T_b, N, F)`` features.

    Row ``[b, t]`` is ``slots`` floats of task ``b``'s earlier rows or zero padding (to be
    overwritten) followed by its feature rows ``t-window+1 .. t``, flattened. Tasks shorter than
    ``T_max`` are zero-padded at the end (rows never observed).
    """
    n, f = features[0].shape[1:]
    width = n * f
    t_max = max(len(x) for x in features)
    rows = t_max + window - 1
    block = slots + rows * width
    flat = np.zeros(len(features) * block, dtype=np.float32)
    body = flat.reshape(len(features), block)[:, slots:].reshape(len(features), rows, width)
    for b, x in enumerate(features):
        body[b, window - 1 : window - 1 + len(x)] = x.reshape(len(x), width)
    item = flat.itemsize
    return np.lib.stride_tricks.as_strided(
        flat,
        shape=(len(features), t_max, slots + window * width),
        strides=(block * item, width * item, item),
        writeable=False,
    )


class ObservationBuilder:
    """Observations of one task.

    Args:
        features: Causal features ``(T, N, F)`` (float32, no NaN).
        window: Days per window (W).
        first: Row of the first tradable day.
        last: Row of the last tradable day.
        include_time: Add the fraction of the task elapsed.
    """

    def __init__(
        self, features: np.ndarray, window: int, first: int, last: int, include_time: bool
    ) -> None:
        """Lay the features out once as a read-only strided view of every day's window.

        Raises:
            ValueError: ``features`` is not three-dimensional.
        """
        if features.ndim != 3:
            raise ValueError(f"features must be (T, N, F), got shape {features.shape}")
        self.features = np.asarray(features, dtype=np.float32)
        self.window = int(window)
        self.first = int(first)
        self.last = int(last)
        self.include_time = bool(include_time)
        self.n_assets = features.shape[1]
        self.n_features = features.shape[2]
        self.slots = self.n_assets + int(self.include_time)
        self.dim = self.slots + self.window * self.n_assets * self.n_features
        self.windows = _window_view([self.features], self.window, self.slots)[0]

    @property
    def space(self) -> gym.spaces.Box:
        """The observation space: an unbounded float32 Box of shape ``(dim,)``."""
        return gym.spaces.Box(-OBS_BOUND, OBS_BOUND, shape=(self.dim,), dtype=np.float32)

    def time_fraction(self, t: int) -> float:
        """``(t - first) / (last - first)``: the fraction of the task elapsed at day ``t``."""
        return (t - self.first) / max(self.last - self.first, 1)

    def build(self, t: int, position: np.ndarray | float) -> np.ndarray:
        """The observation after the close of day ``t`` holding ``position`` (N weights)."""
        out = self.windows[t].copy()
        out[: self.n_assets] = position
        if self.include_time:
            out[self.n_assets] = self.time_fraction(t)
        return out

    def table(self) -> np.ndarray:
        """Observations of every tradable day ``first..last`` with zero positions ``(D, dim)``.

        The single env copies a row and writes the position into it: the same numbers as
        :meth:`build`, without gathering the window at every step.
        """
        out = self.windows[self.first : self.last + 1].copy()
        out[:, : self.n_assets] = 0.0
        if self.include_time:
            out[:, self.n_assets] = [
                self.time_fraction(t) for t in range(self.first, self.last + 1)
            ]
        return out

    def validate(self, obs: np.ndarray) -> None:
        """Raise ``ValueError`` unless ``obs`` has this builder's shape, dtype and finite values."""
        if obs.shape[-1:] != (self.dim,) or obs.dtype != np.float32:
            raise ValueError(
                f"observation must be float32 with last axis {self.dim}, got {obs.dtype} {obs.shape}"
            )
        if not np.isfinite(obs).all():
            raise ValueError("observation holds NaN or inf; check the bars and features")


class BatchObservationBuilder:
    """Observations of B tasks at once, each at its own day: one block gather per step.

    Args:
        builders: One :class:`ObservationBuilder` per task, all with the same ``dim``.
    """

    def __init__(self, builders: Sequence[ObservationBuilder]) -> None:
        """Stack the tasks' windows into one strided view ``(B, T, dim)`` (shorter tasks zero-padded).

        Raises:
            ValueError: The builders' observation sizes differ.
        """
        dims = {b.dim for b in builders}
        if len(dims) != 1:
            raise ValueError(f"tasks give observations of different sizes {sorted(dims)}")
        proto = builders[0]
        self.window, self.dim, self.include_time = proto.window, proto.dim, proto.include_time
        self.n_assets, self.slots = proto.n_assets, proto.slots
        self.windows = _window_view([b.features for b in builders], self.window, self.slots)
        self.first = np.array([b.first for b in builders], dtype=np.int64)
        self.span = np.array([max(b.last - b.first, 1) for b in builders], dtype=np.float64)
        self._rows = np.arange(len(builders))

    def build_batch(self, t: np.ndarray, position: np.ndarray) -> np.ndarray:
        """Observations ``(B, dim)`` of every task ``b`` at its day ``t[b]`` with ``position[b]``."""
        out = self.windows[self._rows, t]
        out[:, : self.n_assets] = position
        if self.include_time:
            out[:, self.n_assets] = (t - self.first) / self.span
        return out
