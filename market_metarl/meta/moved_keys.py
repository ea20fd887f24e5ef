"""The ``[train]`` keys of the old flat layout and the algorithm tables they moved to.

Read by :func:`~market_metarl.meta.experiment.train_config`, which refuses such a key with a
message naming its new home; kept apart so the experiment module stays about what a config means.
"""

from __future__ import annotations

MOVED: dict[str, str] = {
    **{
        k: f"maml.{v}"
        for k, v in {
            "meta_batch": "batch",
            "inner_steps": "inner_steps",
            "inner_lr": "inner_lr",
            "learn_inner_lr": "learn_inner_lr",
            "first_order": "first_order",
        }.items()
    },
    **{f"rl2_{k}": f"rl2.{k}" for k in ("hidden", "batch", "iterations")},
    **{
        f"ppo_{k}": f"rl2_ppo.{k}"
        for k in (
            "lr",
            "epochs",
            "minibatches",
            "clip",
            "gamma",
            "entropy",
            "value_coef",
            "init_log_std",
        )
    },
    "ppo_lambda": "rl2_ppo.gae_lambda",
    **{f"pooled_{k}": f"pooled.{k}" for k in ("iterations", "batch")},
    **{k: f"pooled.{k}" for k in ("finetune_steps", "finetune_lr", "scratch_steps", "scratch_lr")},
    **{
        f"mb_{k}": f"model_based.{k}"
        for k in (
            "hidden",
            "layers",
            "batch",
            "iterations",
            "inner_steps",
            "inner_lr",
            "inner_lr_lr",
            "risk_aversion",
            "online",
            "memory_days",
        )
    },
    **{
        f"pearl_{k}": f"pearl.{k}"
        for k in (
            "latent",
            "hidden",
            "bilinear",
            "batch",
            "iterations",
            "kl_weight",
            "online",
            "memory_days",
            "film",
        )
    },
}
"""Flat ``[train]`` keys of configs before algorithms had their own tables -> their new home."""
