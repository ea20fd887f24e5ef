"""The one ``adapt`` primitive: gradient steps on a copy of the parameters.

Used everywhere adaptation happens: inside MAML's inner loop (training), by the fine-tune and
scratch baselines, in the backtest and in paper trading. It never mutates the model: parameters are
a ``{name: tensor}`` dict evaluated with ``torch.func.functional_call``, so "adapt a copy" is just
building a new dict (learn2learn's shape, without rewriting torch internals).

Second-order MAML keeps the graph of the inner steps (``first_order=False``) so the outer loss
differentiates through them; first-order MAML detaches the inner gradients. Learned per-parameter
step sizes (Meta-SGD) are passed as a dict of tensors in ``lr``.

A whole meta-batch adapts in one call when the parameters carry a leading task axis (the shared
start expanded, ``v.unsqueeze(0).expand(B, *v.shape)``), the network is evaluated per task
(``torch.func.vmap``, or batched matrix products as ``MLPPolicy.forward_per_task`` does), and the
loss is the sum of the tasks' losses: task ``b``'s loss depends on row ``b`` only, so its gradient
is that task's own gradient. ``per_task`` then clips each task's gradient norm on its own, as
separate calls would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]
LossFn = Callable[[Params], torch.Tensor]


def params_of(model: nn.Module) -> Params:
    """The model's trainable parameters as a name -> tensor dict (the tensors themselves)."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def call(model: nn.Module, params: Mapping[str, torch.Tensor], *args: torch.Tensor) -> torch.Tensor:
    """Run ``model`` with ``params`` in place of its own (buffers are the model's)."""
    out: torch.Tensor = functional_call(model, dict(params), args)
    return out


def adapt(
    params: Mapping[str, torch.Tensor],
    loss_fn: LossFn,
    steps: int = 1,
    lr: float | Mapping[str, torch.Tensor] = 0.1,
    first_order: bool = False,
    max_grad_norm: float | None = None,
    per_task: bool = False,
) -> Params:
    """Take ``steps`` gradient steps on ``loss_fn`` from ``params`` and return the new params.

    Args:
        params: Starting parameters (e.g. the meta-learned initialisation).
        loss_fn: Loss of a parameter dict on the support data.
        steps: Inner gradient steps.
        lr: Step size, one float or a per-parameter dict of tensors (Meta-SGD; positive values).
        first_order: Detach the inner gradients (first-order MAML / plain fine-tuning). With
            ``False`` the result stays differentiable in ``params`` and ``lr`` through the steps.
        max_grad_norm: Clip the global norm of each inner gradient (None: no clipping).
        per_task: ``params`` carry a leading task axis and ``loss_fn`` sums the tasks' losses;
            ``max_grad_norm`` then clips each task's gradient norm separately.

    Returns:
        The adapted parameters, a new dict; ``params`` is untouched.
    """
    current = dict(params)
    for _ in range(steps):
        names = [k for k, v in current.items() if v.requires_grad]
        if not names:
            raise ValueError("adapt: no parameter requires grad; nothing to adapt")
        loss = loss_fn(current)
        grads = torch.autograd.grad(
            loss, [current[k] for k in names], create_graph=not first_order, allow_unused=True
        )
        grads_by_name = {
            k: (torch.zeros_like(current[k]) if g is None else g)
            for k, g in zip(names, grads, strict=True)
        }
        if max_grad_norm is not None:
            grads_by_name = clip_norm(grads_by_name, max_grad_norm, per_task)
        new = {}
        for k, v in current.items():
            if k not in grads_by_name:
                new[k] = v
                continue
            g = grads_by_name[k].detach() if first_order else grads_by_name[k]
            step = lr[k] if isinstance(lr, Mapping) else lr
            new[k] = v - step * g
        current = new
    return current


def clip_norm(grads: Params, max_norm: float, per_task: bool = False) -> Params:
    """Scale ``grads`` down to a global L2 norm of at most ``max_norm`` (differentiably).

    With ``per_task`` every tensor has a leading task axis and each task's norm is clipped alone.
    """
    if not per_task:
        total = torch.sqrt(torch.stack([(g**2).sum() for g in grads.values()]).sum())
        scale = torch.clamp(max_norm / (total + 1e-12), max=1.0)
        return {k: g * scale for k, g in grads.items()}
    squares = torch.stack([(g**2).flatten(1).sum(1) for g in grads.values()]).sum(0)
    scale = torch.clamp(max_norm / (torch.sqrt(squares) + 1e-12), max=1.0)
    return {k: g * scale.view(-1, *[1] * (g.dim() - 1)) for k, g in grads.items()}


def detached_copy(params: Mapping[str, torch.Tensor]) -> Params:
    """Leaf copies that require grad: the starting point of a fine-tune or a from-scratch fit."""
    return {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
