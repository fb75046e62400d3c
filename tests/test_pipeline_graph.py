"""One pipeline: the DVC stage graph and the Dagster asset graph have the same nodes and edges,
and every stage runs its asset."""

import re
import subprocess

import yaml

from pg2_pipeline.definitions import defs
from pg2_pipeline.paths import ASSET_NAMES

from conftest import REPO, VENV_BIN


def dvc_graph() -> tuple[set[str], set[tuple[str, str]]]:
    out = subprocess.run(
        [str(VENV_BIN / "dvc"), "dag", "--dot"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    nodes = set(re.findall(r'^"(\w+)";$', out, re.M))
    edges = set(re.findall(r'^"(\w+)" -> "(\w+)";$', out, re.M))
    return nodes, edges


def dagster_graph() -> tuple[set[str], set[tuple[str, str]]]:
    graph = defs.resolve_asset_graph()
    nodes = {key.path[-1] for key in graph.get_all_asset_keys()}
    edges = {
        (parent.path[-1], key.path[-1]) for key in graph.get_all_asset_keys() for parent in graph.get(key).parent_keys
    }
    return nodes, edges


def test_dvc_stages_and_dagster_assets_are_one_graph():
    dvc_nodes, dvc_edges = dvc_graph()
    dag_nodes, dag_edges = dagster_graph()
    assert dvc_nodes == dag_nodes == set(ASSET_NAMES)
    assert dvc_edges == dag_edges, f"only in DVC: {dvc_edges - dag_edges}; only in Dagster: {dag_edges - dvc_edges}"


def test_every_stage_runs_its_own_asset_and_params_section():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, stage in stages.items():
        assert stage["cmd"] == f"pg2 materialize {name} --started-by dvc"
        assert name in stage["params"] and name in params  # one params section per stage, same name
        assert "base" in stage["params"]


def test_assets_are_grouped_by_domain_and_described():
    graph = defs.resolve_asset_graph()
    groups = {key.path[-1]: graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == {
        "twin": "data",
        "image_index": "data",
        "keypoints": "pose",
        "pairs": "pose",
        "manifests": "training",
        "stage1": "training",
        "stage2": "training",
        "evaluation": "evaluation",
        "score": "evaluation",
    }
    for key in graph.get_all_asset_keys():
        assert len(graph.get(key).description or "") > 80, f"{key} needs a description written for users"
    job = defs.resolve_job_def("pg2_pipeline")
    assert {k.path[-1] for k in job.asset_layer.asset_graph.get_all_asset_keys()} >= set(ASSET_NAMES)
