"""The evaluation sharded over 2 torchrun processes (gloo) gives exactly one process's numbers."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest
import torch

from pg2_pipeline import summaries
from pg2_pipeline.config import load_params
from pg2_pipeline.evaluate.stage import build_evaluation, run_evaluation
from pg2_pipeline.paths import ProjectPaths

from conftest import set_params, set_profile

pytestmark = pytest.mark.slow


def test_two_processes_merge_to_the_numbers_of_one(tiny_trained, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one thread per process on both sides: same kernels
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    roots = {}
    try:
        for name, nproc in (("one", 1), ("two", 2)):
            root = tmp_path / name
            shutil.copytree(tiny_trained, root, ignore=shutil.ignore_patterns("evaluation", "mlflow.db", "mlartifacts"))
            set_params(root, evaluation={"nproc_per_node": nproc})
            set_profile(root, "evaluation", max_pairs=16, batch_size=8)  # half the tiny pairs: 2 batches all the same
            paths = ProjectPaths(root)
            params = load_params(paths.params_file)
            summary = (
                run_evaluation(params, paths, progress=False)
                if nproc > 1
                else build_evaluation(params, paths, progress=False)
            )
            roots[name] = (paths, summary)
    finally:
        torch.set_num_threads(threads)
    (one, s1), (two, s2) = roots["one"], roots["two"]
    assert s1.metrics == s2.metrics and s1.fid == s2.fid and s1.gate == s2.gate
    assert summaries.read_metrics(one.evaluation.metrics) == summaries.read_metrics(two.evaluation.metrics)
    assert pq.read_table(one.evaluation.per_pair).equals(pq.read_table(two.evaluation.per_pair))
    assert s1.metrics.pairs == 16  # 2 batches of 8, one per process
