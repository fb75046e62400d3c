"""The one Dagster resource: where the project lives and what its parameters are."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from dagster import ConfigurableResource

from pg2_pipeline.config import Params, load_params
from pg2_pipeline.env import find_project_root
from pg2_pipeline.paths import ProjectPaths

WAIT_TAG = "pg2/wait"  # a run tag: "true" waits for another writer of an asset instead of failing


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

    @contextlib.contextmanager
    def writing(self, context) -> Iterator[None]:
        """The asset body's write lock on its asset (:mod:`pg2_pipeline.locks`): held already
        when ``pg2 materialize`` started the run; taken here for a run launched from the UI,
        which fails naming the holder when another process writes the asset, or waits for it
        when the run has the tag ``pg2/wait: true``."""
        from pg2_pipeline import locks
        from pg2_pipeline.orchestration.run import end_dead_run

        name = context.asset_key.path[-1]
        wait = context.run.tags.get(WAIT_TAG, "").lower() == "true"
        with locks.hold(
            self.paths, name, wait=wait, dagster_run_id=context.run.run_id, say=context.log.warning
        ) as held:
            if held.took_over is not None and held.took_over.dagster_run_id:
                end_dead_run(context.instance, held.took_over.dagster_run_id)
            yield
