"""Dagster adapters: thin assets that call the pure functions of the domain packages."""
