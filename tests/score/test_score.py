"""pg2 score: our saved outputs give the evaluation asset's numbers, every layout gives the same
numbers, each protocol matches a reference call, fingerprints are stable and sensitive, bad input
is counted, and the score asset makes the side-by-side table."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from pg2_pipeline.config import load_params
from pg2_pipeline.paths import ProjectPaths
from pg2_pipeline.score import protocols as P
from pg2_pipeline.score.core import PairBatch, Scorer
from pg2_pipeline.score.project import project_real_set
from pg2_pipeline.score.run import score_outputs

REFERENCE_METRICS = ("ssim_pg2", "mask_ssim", "psnr", "l1", "lpips")


def _score(root: Path, generated: Path, out: Path, **kwargs):
    paths = ProjectPaths(root)
    params = load_params(paths.params_file)
    real = project_real_set(paths, params, params.evaluation.fid_real_images)
    kwargs.setdefault("pairs", paths.evaluation.outputs_pairs)
    kwargs.setdefault("log", lambda *_: None)
    return score_outputs(
        generated, out, dataset=params.base.dataset, images=paths.resolve(params.image_index.root),
        real_batches=real.batches, real_description=real.description, cache_dir=paths.local_cache.features,
        progress=False, **kwargs,
    )  # fmt: skip


@pytest.fixture(scope="module")
def ours(tiny_evaluated, tmp_path_factory):
    """The tiny evaluation's saved stage-2 outputs scored under every protocol."""
    root, summary = tiny_evaluated
    out = tmp_path_factory.mktemp("score") / "ours"
    run = _score(root, ProjectPaths(root).evaluation.method_outputs("stage2"), out)
    return root, summary, run, out


def test_our_saved_outputs_give_the_evaluation_numbers(ours):
    root, summary, run, out = ours
    evaluation = pq.read_table(ProjectPaths(root).evaluation.per_pair).to_pandas()
    scored = pq.read_table(out / "per_pair.parquet").to_pandas()
    merged = evaluation.merge(scored, left_on=["from_id", "to_id"], right_on=["from", "to"])
    assert len(merged) == len(evaluation) == run.metrics["pairs"]["scored"] == summary.metrics.pairs
    for metric in REFERENCE_METRICS:
        ours_column = "pg2.ssim" if metric == "ssim_pg2" else f"pg2.{metric}"
        np.testing.assert_allclose(merged[ours_column], merged[f"stage2_{metric}"], atol=1e-6, err_msg=metric)
    pg2 = run.metrics["protocols"]["pg2"]
    stage2 = summary.metrics.stage2
    for metric in ("ssim", "mask_ssim", "lpips", "fid", "pckh", "detection_rate"):
        if isinstance(stage2[metric], str):
            assert pg2[metric] == stage2[metric], metric
        else:
            assert pg2[metric] == pytest.approx(stage2[metric], abs=1e-4), metric
    assert run.metrics["pairs"] == {"scored": len(evaluation), "expected": len(evaluation), "missing": 0,
                                    "unmatched": 0, "bad": 0}  # fmt: skip
    written = json.loads((out / "metrics.json").read_text())
    assert set(written["protocols"]) == set(P.PROTOCOLS)
    for name, row in written["protocols"].items():
        assert row["fingerprint"] == P.PROTOCOLS[name].fingerprint
    # what the lineages never computed, or needs weights that are not here, is null and says why
    assert (
        written["protocols"]["patn"]["lpips"] is None
        and "not part of" in written["protocols"]["patn"]["why_null"]["lpips"]
    )
    assert (
        written["protocols"]["gfla"]["fid"] is None and "unavailable" in written["protocols"]["gfla"]["why_null"]["fid"]
    )
    report = (out / "report.md").read_text()
    assert all(P.PROTOCOLS[n].fingerprint in report for n in P.PROTOCOLS)


def test_the_evaluation_features_its_saved_outputs_once(ours, tmp_path):
    root, summary, _, _ = ours
    paths = ProjectPaths(root)
    messages: list[str] = []
    run = _score(root, paths.evaluation.method_outputs("stage1"), tmp_path / "g1", protocols=["pg2"],
                 skip=["lpips", "pckh"], log=messages.append)  # fmt: skip
    n = summary.metrics.pairs
    assert f"{P.TF_INCEPTION} features of the generated images: 0 computed, {n} from the feature cache" in messages
    assert run.metrics["protocols"]["pg2"]["fid"] == pytest.approx(summary.metrics.stage1["fid"], abs=1e-4)


def _per_pair(out: Path):
    return pq.read_table(out / "per_pair.parquet").to_pandas().sort_values(["from", "to"]).reset_index(drop=True)


def test_every_layout_round_trips_to_identical_numbers(ours, tmp_path):
    root, _, run, out = ours
    outputs = ProjectPaths(root).evaluation.method_outputs("stage2")
    pairs = [line.split(",") for line in ProjectPaths(root).evaluation.outputs_pairs.read_text().split()[1:]]
    # GFLA's naming (no extension inside), as JPEG-free PNG; PATN's 5-tile strips; a CSV
    gfla, strips, csv_dir = tmp_path / "gfla", tmp_path / "strips", tmp_path / "csv"
    for d in (gfla, strips, csv_dir / "imgs"):
        d.mkdir(parents=True)
    rows = ["from,to,generated"]
    for i, (f, t) in enumerate(pairs):
        image = cv2.imread(str(outputs / f"{f}___{t}.png"))
        cv2.imwrite(str(gfla / f"{Path(f).stem}_2_{Path(t).stem}_vis.png"), image)
        noise = np.full_like(image, 37)
        cv2.imwrite(str(strips / f"{f}___{t}_vis.png"), np.concatenate([noise, noise, noise, noise, image], axis=1))
        cv2.imwrite(str(csv_dir / "imgs" / f"{i}.png"), image)
        rows.append(f"{f},{t},imgs/{i}.png")
    (csv_dir / "list.csv").write_text("\n".join(rows) + "\n")
    reference = _per_pair(out)
    for name, generated, layout in (("gfla", gfla, "files"), ("strips", strips, "strip"),
                                    ("csv", csv_dir / "list.csv", "csv")):  # fmt: skip
        again = _score(root, generated, tmp_path / f"out_{name}")
        assert again.metrics["layout"] == layout
        got = _per_pair(tmp_path / f"out_{name}")
        assert list(got.columns) == list(reference.columns)
        values = got.drop(columns=["from", "to"]).to_numpy(dtype=float)
        np.testing.assert_allclose(values, reference.drop(columns=["from", "to"]).to_numpy(dtype=float), atol=1e-12)
        for proto, row in again.metrics["protocols"].items():
            assert row["fid"] == run.metrics["protocols"][proto]["fid"]


def _skimage_ssim(gen: np.ndarray, tgt: np.ndarray, protocol: str) -> float:
    from skimage.metrics import structural_similarity

    if protocol == "pg2":
        return structural_similarity(gen, tgt, channel_axis=-1)
    if protocol == "win51":  # GFLA / CFLD: [0, 1] floats
        return structural_similarity(gen / 255.0, tgt / 255.0, win_size=51, data_range=1, channel_axis=-1)
    sigma = {"gaussian": 1.5, "gaussian_s12": 1.2}[protocol]
    gen, tgt = gen.astype(np.float64), tgt.astype(np.float64)
    return structural_similarity(tgt, gen, gaussian_weights=True, sigma=sigma, use_sample_covariance=False,
                                 channel_axis=-1, data_range=gen.max() - gen.min())  # fmt: skip


@pytest.mark.parametrize("dataset", ["market", "deepfashion"])
def test_each_protocol_matches_scikit_image_called_its_way(dataset):
    rng = np.random.default_rng(0)
    h, w = (128, 64) if dataset == "market" else (256, 256)
    target = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    generated = np.clip(target.astype(int) + rng.integers(-40, 40, target.shape), 0, 255).astype(np.uint8)
    yx = torch.full((2, 18, 2), -1.0)
    as_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    scorer = Scorer(list(P.PROTOCOLS.values()), dataset, torch.device("cpu"), skip=("fid", "lpips"))
    scorer.update(PairBatch([("a", "b"), ("c", "d")], as_t(generated), as_t(target), yx, yx))
    rows = scorer.per_pair_columns()
    for name, protocol in P.PROTOCOLS.items():
        g = protocol.on(dataset)
        gen, tgt = generated, target
        if g.resize_generated in ("crop-width",) or g.prepare_target == "crop-width":
            gen, tgt = gen[:, :, 40:216], tgt[:, :, 40:216]  # 256×256 -> PATN's 256×176
        if g.pad_to:  # PATN / DPTN: white canvas 256×256, 40 px each side
            pad = lambda a: np.pad(a, ((0, 0), (0, 0), (40, 40), (0, 0)), constant_values=255)  # noqa: E731
            gen, tgt = pad(gen), pad(tgt)
        if g.resize_generated not in ("none", "crop-width") and dataset == "deepfashion":
            continue  # resized outputs: checked below with the resize itself
        for i, key in enumerate([("a", "b"), ("c", "d")]):
            got = rows[name][key]
            assert got["ssim"] == pytest.approx(_skimage_ssim(gen[i], tgt[i], protocol.ssim), abs=1e-5), name
            for variant in protocol.ssim_extra:
                assert got[f"ssim_{variant}"] == pytest.approx(_skimage_ssim(gen[i], tgt[i], variant), abs=1e-5)
            diff = gen[i].astype(float) - tgt[i].astype(float)
            assert got["l1"] == pytest.approx(np.abs(diff).mean() / 255, abs=1e-12)
            assert got["psnr"] == pytest.approx(10 * np.log10(255**2 / (diff**2).mean()), abs=1e-9)


def test_resizing_protocols_resize_like_their_lineage():
    from pg2_pipeline.score.core import _resize

    rng = np.random.default_rng(1)
    square = rng.integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)
    t = torch.from_numpy(square).permute(0, 3, 1, 2)
    cv2_linear = cv2.resize(square[0], (176, 256), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(_resize(t, (256, 176), "cv2-linear")[0].permute(1, 2, 0).numpy(), cv2_linear)
    bicubic = torch.nn.functional.interpolate(t.float(), size=(256, 176), mode="bicubic", antialias=True)
    assert torch.equal(_resize(t, (256, 176), "torch-bicubic-aa"), bicubic.round().clamp(0, 255).to(torch.uint8))
    assert torch.equal(_resize(t, (256, 176), "crop-width"), t[..., 40:216])


def test_fingerprints_are_stable_across_processes_and_change_with_any_field():
    code = "from pg2_pipeline.score.protocols import PROTOCOLS; print({n: p.fingerprint for n, p in PROTOCOLS.items()})"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert other.strip() == str({n: p.fingerprint for n, p in P.PROTOCOLS.items()})
    assert len({p.fingerprint for p in P.PROTOCOLS.values()}) == len(P.PROTOCOLS)
    base = P.PROTOCOLS["patn"]
    geometry = dict(base.geometry)
    changed = [
        dataclasses.replace(base, ssim="win51"),
        dataclasses.replace(base, ssim_extra=("gaussian_s12",)),
        dataclasses.replace(base, mask_ssim="condition"),
        dataclasses.replace(base, mask_datasets=("market", "deepfashion")),
        dataclasses.replace(base, psnr=False),
        dataclasses.replace(base, l1=False),
        dataclasses.replace(base, lpips=P.LPIPSSpec("alex", "0.0", "[-1,1]")),
        dataclasses.replace(base, fid=P.FIDSpec(P.TF_INCEPTION, "tf1-bilinear-299", "train")),
        dataclasses.replace(base, name="patn2"),
    ]
    fashion = geometry["deepfashion"]
    for field in ({"pad_value": 0}, {"pad_to": None}, {"size": (256, 256)}, {"resize_generated": "cv2-linear"},
                  {"prepare_target": "none"}, {"accepts": ((256, 176),)}):  # fmt: skip
        g = dict(geometry, deepfashion=dataclasses.replace(fashion, **field))
        changed.append(dataclasses.replace(base, geometry=tuple(g.items())))
    prints = [p.fingerprint for p in changed]
    assert base.fingerprint not in prints and len(set(prints)) == len(prints)
    assert dataclasses.replace(base, doc="reworded").fingerprint == base.fingerprint  # description only


def test_bad_inputs_are_counted_with_their_reasons_and_nothing_scorable_exits_2(ours, tmp_path):
    root, _, _, _ = ours
    outputs = ProjectPaths(root).evaluation.method_outputs("stage2")
    files = sorted(outputs.glob("*.png"))
    folder = tmp_path / "mixed"
    folder.mkdir()
    for f in files[:4]:
        shutil.copy(f, folder / f.name)
    (folder / files[4].name).write_bytes(files[4].read_bytes()[:200])  # truncated
    small = cv2.imread(str(files[5]))[:100]
    cv2.imwrite(str(folder / files[5].name), small)  # wrong size
    (folder / "zzz___nobody.png").write_bytes(files[0].read_bytes())  # matches no pair
    run = _score(root, folder, tmp_path / "out", skip=["fid", "lpips"])
    counts = run.metrics["pairs"]
    assert counts["scored"] == 4 and counts["expected"] == len(files)
    assert counts["bad"] == 2 and counts["unmatched"] == 1 and counts["missing"] == len(files) - 6
    reasons = " ".join(p.reason for p in run.problems)
    assert "size 64×100" in reasons
    report = (tmp_path / "out" / "report.md").read_text()
    assert "zzz___nobody.png" in report and "missing" in report
    # nothing scorable: one line naming the folder and the layout, exit code 2
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    proc = subprocess.run([sys.executable, "-m", "pg2_pipeline", "score", str(empty), "-o", str(tmp_path / "o2"),
                           "--no-mlflow", "--skip", "fid,lpips"], cwd=root, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert str(empty) in proc.stderr and "files" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_the_score_asset_makes_the_side_by_side_table_even_after_a_failed_promotion_gate(
    tiny_trained, dagster_home, tmp_path, monkeypatch
):
    """`pg2 materialize evaluation score`: the champion gate fails (the model is registered
    without @champion), which ends that Dagster run before score; score runs in a new run, as
    `dvc repro` runs it as a stage of its own, and nothing is skipped silently."""
    from pg2_pipeline.evaluate import stage as evaluation_stage
    from pg2_pipeline.orchestration import run as orchestration_run
    from pg2_pipeline.score.stage import OURS
    from pg2_pipeline.summaries import ChampionGate

    root = tmp_path / "project"
    shutil.copytree(tiny_trained, root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    monkeypatch.setenv("PG2_PROJECT_DIR", str(root))
    monkeypatch.chdir(root)
    failing = ChampionGate(passed=False, metric="mask_ssim", value=0.0, baseline="copy", baseline_value=1.0,
                           reason="forced by the test: registered without the champion alias")  # fmt: skip
    monkeypatch.setattr(evaluation_stage, "champion_gate", lambda metrics: failing)
    # what it prints (not capsys: Dagster's loggers would keep its stream past this test)
    printed: list[str] = []
    monkeypatch.setattr(
        orchestration_run, "print", lambda *a, **_: printed.append(" ".join(map(str, a))), raising=False
    )
    assert orchestration_run.materialize_assets(["evaluation", "score"])
    out = "\n".join(printed)
    assert "check evaluation.champion_gate did not pass" in out
    assert "score: skipped by the promotion gate's failed run; materializing in a new run" in out

    paths = ProjectPaths(root)
    table = paths.score.table.read_text()
    for name in OURS.values():
        assert name in table
    for protocol in P.PROTOCOLS.values():
        assert protocol.fingerprint in table
    metrics = json.loads(paths.score.metrics.read_text())
    evaluated = json.loads(paths.evaluation.metrics.read_text())
    assert metrics[OURS["stage2"]]["pg2"]["ssim"] == pytest.approx(evaluated["stage2"]["ssim"], abs=1e-4)
    assert metrics[OURS["copy"]]["patn"]["ssim"] != metrics[OURS["stage2"]]["patn"]["ssim"]
    summary = json.loads(paths.summary("score").read_text())
    assert all(c["scored"] == c["expected"] for c in summary["runs"].values())
