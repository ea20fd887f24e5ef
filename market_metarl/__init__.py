"""market_metarl."""
