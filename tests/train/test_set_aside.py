"""Nothing deleted silently: checkpoints a run cannot resume from (the newest one truncated,
another run's of other params) are moved to checkpoints/set-aside/<time>/ with their reasons,
and the printed line, the summary and the MLflow run say so; three set-aside folders are kept."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from pg2_pipeline import summaries
from pg2_pipeline.config import load_params
from pg2_pipeline.models import io as ckpt
from pg2_pipeline.paths import ProjectPaths, StagePaths
from pg2_pipeline.train.stages import train_stage

from conftest import set_params

TINY = {"steps": 6, "batch_size": 4, "base_channels": 8, "checkpoint_every": 2, "sample_every": 6, "log_every": 2,
        "validate_every": 0, "select": "last", "precision": "fp32", "channels_last": False}  # fmt: skip


def test_truncated_and_foreign_checkpoints_are_set_aside_and_reported(tiny_manifests, tmp_path, monkeypatch, capsys):
    import mlflow

    root = tmp_path / "p"
    shutil.copytree(tiny_manifests, root, ignore=shutil.ignore_patterns("stage1", "stage2", "mlflow.db", "mlartifacts"))
    set_params(root, stage1={"profiles": {"tiny": TINY}})
    paths = ProjectPaths(root)
    files = paths.stage("stage1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    params = load_params(paths.params_file)
    train_stage("stage1", params, paths, progress=False)
    straight = load_file(files.weights("g1"))

    # the newest checkpoint cut short (as a copy or a full disk leaves it), and a newer one of
    # other params (another run's: `dvc exp run -S stage1.lr=...` in the same folder)
    newest = files.checkpoint(6)
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    other = ckpt.load_checkpoint(files.checkpoint(4))
    other["params"]["stage1"]["lr"] = 0.5
    other |= {"step": 8, "fingerprint": "0123456789abcdef"}
    ckpt.save_checkpoint(files, other)
    capsys.readouterr()

    summary = train_stage("stage1", params, paths, progress=False)
    printed = capsys.readouterr().out
    [folder] = files.set_aside.iterdir()
    where = folder.relative_to(root)
    line = (
        f"stage1: resuming from step 4 (step-00000004.pt); set aside in {where}: "
        "step-00000006.pt unreadable (truncated), step-00000008.pt other params"
    )
    assert line in printed.splitlines()
    assert sorted(p.name for p in folder.iterdir()) == ["reasons.json", "step-00000006.pt", "step-00000008.pt"]
    assert json.loads((folder / "reasons.json").read_text()) == {
        "step-00000006.pt": "unreadable (truncated)",
        "step-00000008.pt": "other params",
    }
    assert summary.resumed_from_step == 4
    assert summary.set_aside == ("step-00000006.pt unreadable (truncated)", "step-00000008.pt other params")
    assert summary.set_aside_to == str(where)
    assert summaries.read(files.summary, summaries.TrainingSummary) == summary
    tag = mlflow.get_run(summary.mlflow_run_id).data.tags["checkpoints.set_aside"]
    assert tag == line.removeprefix("stage1: ")
    # resumed from step 4, the run ends where the uninterrupted one did
    resumed = load_file(files.weights("g1"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert [s for s, _ in ckpt.checkpoints(files)] == [2, 4, 6]


def test_the_three_newest_set_aside_folders_are_kept(tmp_path):
    files = StagePaths(tmp_path / "stage1")
    made = []
    for i in range(4):
        path = files.checkpoint(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        folder, removed = ckpt.set_aside(files, {path: "other code"})
        made.append(folder)
        assert removed == (made[:1] if i == 3 else [])
    assert sorted(p for p in files.set_aside.iterdir()) == made[1:]
    assert all((f / "reasons.json").is_file() for f in made[1:]) and not os.path.exists(made[0])
    assert not list(Path(files.checkpoints).glob("step-*.pt"))
