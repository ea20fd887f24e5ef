"""An experiment's context assets, resolved against its ``[data]`` section and checked.

Kept apart from :mod:`~market_metarl.data.context` (which :mod:`~market_metarl.data.features`
imports) because it reads both the features and the data settings.
"""

from __future__ import annotations

from dataclasses import replace

from market_metarl.data.features import FeatureSpec
from market_metarl.data.tasks import DataSection
from market_metarl.data.universe import source_of, symbol_name
from market_metarl.types import ConfigError


def resolve_context(features: FeatureSpec, data: DataSection, check_heldout: bool) -> FeatureSpec:
    """``features`` with its bare context symbols resolved with ``data.source``, checked.

    A held-out (zero-shot) asset must not be a context asset: its bars would feed every training
    observation, so it would no longer be "never trained on". Such an entry is refused (not
    dropped: dropping would silently change the observation layout a config asks for).

    Args:
        features: The ``[features]`` settings.
        data: The ``[data]`` settings.
        check_heldout: Expand the universe and refuse held-out context assets (skipped when a
            trained run is opened with its recorded tasks: it was checked when trained).

    Raises:
        ConfigError: A context asset that is a held-out asset, naming it and the fix.
        DataError: The universe's files cannot be listed (``check_heldout`` only).
    """
    if not features.context:
        return features
    sources = tuple(source_of(s, data.source) for s in features.context_specs)
    if check_heldout:
        heldout = data.universe().heldout
        names = {a.name for a in heldout} | {a.source for a in heldout}
        leak = [s for s in sources if symbol_name(s) in names or s in names]
        if leak:
            raise ConfigError(
                f"features.context {leak} names held-out asset(s) of [data] heldout_symbols: their "
                "bars would feed every training observation, so they would no longer be unseen; "
                "remove them from features.context (or from heldout_symbols)"
            )
    return replace(features, context=sources)
