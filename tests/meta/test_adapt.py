"""The one adapt primitive: known answers for first order, and second-order gradients that flow."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from market_metarl.meta.adapt import adapt, call, detached_copy, params_of


def _tiny() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    x = torch.randn(5, 2)
    y = torch.randn(5, 1)
    return model, x, y


def test_first_order_step_matches_hand_built_update() -> None:
    model, x, y = _tiny()
    params = params_of(model)

    def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return ((call(model, p, x) - y) ** 2).mean()

    adapted = adapt(params, loss, steps=1, lr=0.1, first_order=True)
    model.zero_grad()
    ((model(x) - y) ** 2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None
        expected = p.detach() - 0.1 * p.grad
        assert torch.allclose(adapted[name], expected, atol=1e-7), name
    # the model itself is untouched
    assert torch.equal(params_of(model)["0.weight"], params["0.weight"])


def test_two_steps_equal_two_single_steps() -> None:
    model, x, y = _tiny()

    def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return ((call(model, p, x) - y) ** 2).mean()

    start = detached_copy(params_of(model))
    two = adapt(start, loss, steps=2, lr=0.05, first_order=True)
    one = adapt(adapt(start, loss, steps=1, lr=0.05, first_order=True), loss, 1, 0.05, True)
    for k in two:
        assert torch.allclose(two[k], one[k], atol=1e-7)


def test_second_order_gradient_flows_and_differs_from_first_order() -> None:
    model, x, y = _tiny()
    xq, yq = x + 0.5, y - 0.3

    def support_loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return ((call(model, p, x) - y) ** 2).mean()

    def outer_grad(first_order: bool) -> dict[str, torch.Tensor]:
        params = params_of(model)
        adapted = adapt(params, support_loss, steps=1, lr=0.5, first_order=first_order)
        q = ((call(model, adapted, xq) - yq) ** 2).mean()
        return dict(zip(params, torch.autograd.grad(q, list(params.values())), strict=True))

    second, first = outer_grad(False), outer_grad(True)
    diff = sum(float((second[k] - first[k]).abs().sum()) for k in second)
    assert diff > 1e-4  # the Hessian term is really there


def test_second_order_matches_finite_differences() -> None:
    model, x, y = _tiny()
    model = model.double()
    x, y = x.double(), y.double()

    def support_loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return ((call(model, p, x) - y) ** 2).mean()

    def meta_loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        adapted = adapt(p, support_loss, steps=1, lr=0.3, first_order=False)
        return ((call(model, adapted, x * 2) - y) ** 2).mean()

    params = {k: v.detach().clone().requires_grad_(True) for k, v in params_of(model).items()}
    g = torch.autograd.grad(meta_loss(params), [params["2.bias"]])[0]
    eps = 1e-6
    plus = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    minus = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    with torch.no_grad():
        plus["2.bias"] += eps
        minus["2.bias"] -= eps
    numeric = (meta_loss(plus) - meta_loss(minus)) / (2 * eps)
    assert float(g) == pytest.approx(float(numeric.detach()), rel=1e-5)


def test_learned_step_sizes_get_gradients() -> None:
    model, x, y = _tiny()
    params = params_of(model)
    log_lr = {k: torch.full_like(v, -2.0, requires_grad=True) for k, v in params.items()}

    def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return ((call(model, p, x) - y) ** 2).mean()

    adapted = adapt(params, loss, lr={k: v.exp() for k, v in log_lr.items()})
    ((call(model, adapted, x) - y) ** 2).mean().backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in log_lr.values())


def test_adapt_without_trainable_params_is_a_clear_error() -> None:
    frozen = {"w": torch.zeros(2)}
    with pytest.raises(ValueError, match="no parameter requires grad"):
        adapt(frozen, lambda p: p["w"].sum())
