"""The demo's closing lines: the pose transfer shows the test pair of median SSIM (a typical
result, not the first row), and the time is accounted for stage by stage."""

from __future__ import annotations

import pyarrow.parquet as pq

from pg2_pipeline.demo import median_pair, print_timings
from pg2_pipeline.paths import ProjectPaths


def test_the_example_is_the_test_pair_of_median_ssim(tiny_evaluated):
    root, summary = tiny_evaluated
    paths = ProjectPaths(root)
    row, rank, ssim, pairs = median_pair(paths)
    scores = pq.read_table(paths.evaluation.per_pair).to_pandas()
    column = f"stage2_ssim_{summary.metrics.ssim_protocol}"
    assert pairs == len(scores) and rank == (len(scores) + 1) // 2
    assert (scores[column] < ssim).sum() == rank - 1  # as many pairs below it as its rank says
    assert scores.loc[scores.pair_id == row["pair_id"], column].item() == ssim
    assert {"from_id", "to_id", "from_path"} <= set(row)


def test_the_timing_lines_account_for_setup_and_the_rest(dagster_home, monkeypatch, capsys):
    monkeypatch.setenv("PG2_SETUP_SECONDS", "170")
    print_timings(dagster_home, started=0.0, total=60.0)
    out = capsys.readouterr().out
    assert "where the time went" in out and "core" in out
    assert "setup (environments)" in out and "170 s" in out
    assert "total" in out and "230 s (3 min 50 s)" in out
