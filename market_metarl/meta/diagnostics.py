"""Task-inference diagnostics: does an agent's adaptation identify the regime?

After an agent adapts on the first ``k`` days of a task, its *task state* is what the adaptation
produced, as the agent reports it through :meth:`~market_metarl.meta.contracts.Agent.task_state`:
RL^2's recurrent state (GRU hidden state, last weight, last return), PEARL's posterior mean, the
model-based agent's (or any gradient agent's) adapted parameters, flattened. Two measures read it:

- **Linear probe** (synthetic family): a logistic regression fitted on the task states of train
  tasks and scored on held-out tasks, predicting a known regime property (the sign of the
  autocorrelation). Plotted against ``k``, it shows how fast the adaptation learns the regime.
  Chance is the share of the majority class (about 0.5 here); the Bayes rule for the sign from
  ``k`` days is the sign of ``sum_t r[t] r[t+1]`` (the likelihood ratio of +phi against -phi is
  monotone in it), so no probe beats that statistic's accuracy.
- **Clustering by regime label** (real data): the silhouette of the task states grouped by their
  regime labels (``trend-vol``, ``hmm``...), and a probe on the labels.

Task states come from :meth:`Agent.adapt` exactly as the benchmark, the backtest and paper trading
call it, so what is probed is what trades.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from market_metarl.meta.contracts import Agent
from market_metarl.meta.episodes import Episode
from market_metarl.types import TaskSpec


def task_state(agent: Agent) -> np.ndarray:
    """The agent's current task state, flattened to ``(dim,)`` float64.

    Raises:
        TypeError: The agent keeps no task state (e.g. buy-and-hold, the rule agents).
    """
    state = agent.task_state()
    if state:
        return np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1) for v in state.values()])
    raise TypeError(
        f"agent {getattr(agent, 'name', agent)!r} keeps no task state; the diagnostics read "
        "RL^2, PEARL, model-based and gradient (MAML, fine-tune) agents"
    )


def task_states(
    agent: Agent, episode: Episode, days: int, tasks: Sequence[int] | None = None
) -> np.ndarray:
    """Task states ``(B, dim)`` after adapting on the first ``days`` days of each task.

    ``days`` follows the protocol's K: the support is the first ``days - 1`` decision days (their
    returns through day ``days - 1``); with ``days <= 1`` nothing is seen (the prior's state).
    """
    if days - 1 > episode.days:
        raise ValueError(f"episode has {episode.days} decision days, {days - 1} needed")
    rows = list(tasks) if tasks is not None else list(range(episode.batch))
    out = []
    for row in rows:
        agent.init()
        if days > 1:
            with torch.enable_grad():
                agent.adapt(episode.select([row]).window(0, days - 1))
        out.append(task_state(agent))
    return np.stack(out)


@dataclass
class LinearProbe:
    """Logistic regression (one-vs-rest beyond two classes) on standardised inputs, L2-penalised.

    Fitted by Newton's method (deterministic, no learning rate to tune).

    Attributes:
        l2: Ridge penalty on the weights (not the intercept), in units of the standardised inputs.
        iterations: Newton steps.
    """

    l2: float = 1.0
    iterations: int = 50

    def fit(self, x: np.ndarray, labels: Sequence[object] | np.ndarray) -> LinearProbe:
        """Fit on task states ``x`` ``(n, dim)`` and their labels ``(n,)``.

        Two classes fit one logistic regression (the second class against the first); more fit
        one per class.

        Returns:
            The probe itself, fitted.

        Raises:
            ValueError: Fewer than two distinct labels.
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(labels)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"a probe needs two classes or more, got {self.classes_.tolist()}")
        self.mean_ = x.mean(0)
        sd = x.std(0)
        self.scale_ = np.where(sd > 1e-12, sd, 1.0)
        design = self._design(x)
        targets = [y == c for c in self.classes_[1:]] if len(self.classes_) == 2 else None
        targets = targets or [y == c for c in self.classes_]
        self.coef_ = np.stack([self._newton(design, t.astype(np.float64)) for t in targets])
        return self

    def _design(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean_) / self.scale_
        return np.hstack([np.ones((len(z), 1)), z])

    def _newton(self, a: np.ndarray, t: np.ndarray) -> np.ndarray:
        w = np.zeros(a.shape[1])
        penalty = np.full(a.shape[1], self.l2)
        penalty[0] = 1e-8
        for _ in range(self.iterations):
            p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -30, 30)))
            grad = a.T @ (p - t) + penalty * w
            hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(penalty)
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < 1e-10:
                break
        return w

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted label of each task state ``(n, dim)``: the class with the highest score."""
        scores = self._design(x) @ self.coef_.T
        if len(self.classes_) == 2:
            return np.where(scores[:, 0] > 0, self.classes_[1], self.classes_[0])
        return self.classes_[np.argmax(scores, 1)]

    def accuracy(self, x: np.ndarray, labels: Sequence[object] | np.ndarray) -> float:
        """Share of task states ``(n, dim)`` whose predicted label is the given one, in [0, 1]."""
        return float(np.mean(self.predict(x) == np.asarray(labels)))


def probe_accuracy(
    train_states: np.ndarray,
    train_labels: Sequence[object] | np.ndarray,
    test_states: np.ndarray,
    test_labels: Sequence[object] | np.ndarray,
    l2: float = 1.0,
) -> float:
    """Held-out accuracy of a :class:`LinearProbe` fitted on the train tasks' states."""
    return LinearProbe(l2=l2).fit(train_states, train_labels).accuracy(test_states, test_labels)


def probe_curve(
    agent: Agent,
    train: Episode,
    train_labels: Sequence[object] | np.ndarray,
    test: Episode,
    test_labels: Sequence[object] | np.ndarray,
    days: Sequence[int],
    l2: float = 1.0,
) -> dict[int, float]:
    """Held-out probe accuracy after each number of days of experience in ``days``."""
    return {
        k: probe_accuracy(
            task_states(agent, train, k), train_labels, task_states(agent, test, k), test_labels, l2
        )
        for k in days
    }


def autocorrelation_signs(tasks: Sequence[TaskSpec]) -> np.ndarray:
    """The sign of each synthetic task's autocorrelation ``phi`` (+1 momentum, -1 reversion)."""
    return np.sign([t.param("phi") for t in tasks]).astype(int)


def silhouette(states: np.ndarray, labels: Sequence[object] | np.ndarray) -> float:
    """Mean silhouette of the states grouped by label (Euclidean, on standardised states).

    In ``[-1, 1]``: near 1 the regimes form tight, separate clusters, near 0 they overlap. A task
    alone in its label scores 0 (the usual convention).
    """
    x = np.asarray(states, dtype=np.float64)
    y = np.asarray(labels)
    classes = np.unique(y)
    if len(classes) < 2 or len(classes) >= len(x):
        raise ValueError("silhouette needs 2 <= number of labels < number of tasks")
    sd = x.std(0)
    x = (x - x.mean(0)) / np.where(sd > 1e-12, sd, 1.0)
    dist = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))
    scores = np.zeros(len(x))
    for i in range(len(x)):
        same = y == y[i]
        if same.sum() < 2:
            continue
        a = dist[i, same].sum() / (same.sum() - 1)
        b = min(dist[i, y == c].mean() for c in classes if c != y[i])
        scores[i] = (b - a) / max(a, b, 1e-12)
    return float(scores.mean())


def plot_probe_curves(
    curves: Mapping[str, Mapping[int, float]],
    path: str | Path,
    title: str = "Task inference: linear probe for the sign of the autocorrelation",
    reference: Mapping[int, float] | None = None,
) -> Path:
    """Plot held-out probe accuracy against days of experience, one line per agent, to a PNG.

    Args:
        curves: ``{agent name: {days: accuracy}}``.
        path: Where to write the PNG.
        title: Plot title.
        reference: An upper reference line (e.g. the Bayes statistic's accuracy), dashed.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, curve in curves.items():
        days = sorted(curve)
        ax.plot(days, [curve[k] for k in days], marker="o", label=name)
    if reference is not None:
        days = sorted(reference)
        ax.plot(
            days,
            [reference[k] for k in days],
            "k--",
            lw=1,
            label="Bayes rule (sign of sum r_t r_t+1)",
        )
    ax.axhline(0.5, color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xlabel("days of experience k")
    ax.set_ylabel("held-out probe accuracy")
    ax.set_ylim(0.4, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def sign_statistic_accuracy(
    episode: Episode, labels: Sequence[int] | np.ndarray, days: int, return_index: int
) -> float:
    """Accuracy of ``sign(sum_t r[t] r[t+1])`` over the first ``days`` days: the Bayes rule's.

    The reference a probe of the sign of the autocorrelation is measured against (one asset).
    """
    if days <= 1:
        return float(max(np.mean(np.asarray(labels) > 0), np.mean(np.asarray(labels) < 0)))
    x = episode.obs[:, : days - 1, return_index].double()
    y = torch.log(episode.closes[:, 1:days, 0] / episode.closes[:, : days - 1, 0])
    stat = np.sign((x * y).sum(1).numpy())
    return float(np.mean(stat == np.asarray(labels)))
