"""The one Dagster resource: where the project lives and what its parameters are."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from pg2_pipeline.config import Params, load_params
from pg2_pipeline.env import find_project_root
from pg2_pipeline.paths import ProjectPaths


class ProjectResource(ConfigurableResource):
    """The project folder (``params.yaml``, ``assets/``). Empty ``root`` means: discover it from
    ``$PG2_PROJECT_DIR`` or the working directory, as the CLI, ``dvc repro`` and ``dagster dev``
    all start in the project folder. Tests pass a temporary folder."""

    root: str = ""

    @property
    def paths(self) -> ProjectPaths:
        return ProjectPaths(Path(self.root).resolve() if self.root else find_project_root())

    def params(self) -> Params:
        """``params.yaml``, read and validated afresh for every run."""
        return load_params(self.paths.params_file)
