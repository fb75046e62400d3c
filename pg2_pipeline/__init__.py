"""pg2-pipeline: Pose Guided Person Image Generation (PG², Ma et al., NIPS 2017) as a
reproducible Dagster + DVC + MLflow pipeline."""

from pg2_pipeline.env import apply_offline_defaults

__version__ = "0.1.0"

# Every entry point (CLI, Dagster code location, DVC stage, tests) imports the package first, so
# telemetry is off before dagster, dvc or mlflow are imported.
apply_offline_defaults()
