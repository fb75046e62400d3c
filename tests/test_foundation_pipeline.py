"""The Dagster side of the foundation on the tiny profile: definitions validate, in-process
materialization, the blocking quarantine check, and the Dagster CLI's text selection (antlr
4.13; DVC lives in its own environment with antlr 4.9: tests/test_dvc_door.py)."""

import shutil
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from pg2_pipeline import summaries
from pg2_pipeline.orchestration import data
from pg2_pipeline.orchestration.resources import ProjectResource
from pg2_pipeline.paths import ProjectPaths

from conftest import VENV_BIN, run, set_params

DVC = str(VENV_BIN / "dvc")
DAGSTER = str(VENV_BIN / "dagster")
PG2 = str(VENV_BIN / "pg2")

pytestmark = pytest.mark.slow


def test_definitions_validate(project):
    out = run([DAGSTER, "definitions", "validate", "-w", "workspace.yaml"], cwd=project)
    assert "All code locations passed validation" in out.stdout + out.stderr


def test_materialize_twin_and_index_in_process(project, dagster_home):
    result = materialize([data.twin, data.image_index], resources={"project": ProjectResource(root=str(project))})
    assert result.success
    paths = ProjectPaths(project)
    summary = summaries.read(paths.summary("image_index"), summaries.ImageIndexSummary)
    twin = summaries.read(paths.summary("twin"), summaries.TwinSummary)
    # every rendered image was indexed, except the Market distractors/junk, which are counted
    assert summary.images + sum(summary.excluded.values()) == twin.total_images
    assert summary.quarantined == 0 and summary.excluded["distractor"] > 0
    assert summary.identities_per_split["train"] + summary.identities_per_split["test"] <= 40
    assert paths.twin_contact_sheet.stat().st_size > 10_000
    mats = result.asset_materializations_for_node("image_index")
    assert mats[0].metadata["dagster/row_count"].value == summary.images
    check = result.get_asset_check_evaluations()[0]
    assert check.check_name == "quarantine_fraction" and check.passed


def test_blocking_quarantine_check_fails_the_run(project, tmp_path):
    # a dataset folder where half of the files are broken
    src = tmp_path / "broken"
    materialize([data.twin], resources={"project": ProjectResource(root=str(project))})
    shutil.copytree(ProjectPaths(project).twin_dataset, src)
    for i, f in enumerate(sorted((src / "bounding_box_train").iterdir())):
        if i % 2:
            f.write_bytes(f.read_bytes()[:100])
    set_params(project, image_index={"root": str(src)})
    result = materialize(
        [data.image_index], resources={"project": ProjectResource(root=str(project))}, raise_on_error=False
    )
    assert not result.success
    evaluation = result.get_asset_check_evaluations()[0]
    assert not evaluation.passed and "quarantined" in evaluation.description
    # the pg2 CLI (what DVC runs) exits non-zero on the failed check
    proc = __import__("subprocess").run(
        [PG2, "materialize", "image_index"], cwd=project, capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert "blocking asset check failed" in proc.stdout


def test_dagster_cli_text_selection_records_runs_in_the_project_instance(project, dagster_home):
    run([PG2, "materialize", "twin"], cwd=project)
    # a text selection needs Dagster's antlr 4.13 grammar (the DVC conflict breaks exactly this)
    run([DAGSTER, "asset", "materialize", "--select", "image_index", "-m", "pg2_pipeline.definitions"], cwd=project)
    instance = DagsterInstance.get()
    assert instance.get_latest_materialization_event(AssetKey("twin")) is not None
    assert instance.get_latest_materialization_event(AssetKey("image_index")) is not None
    assert Path(instance.root_directory) == dagster_home
