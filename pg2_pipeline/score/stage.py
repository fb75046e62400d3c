"""The ``score`` asset: our saved test outputs (params ``evaluation.save_outputs``) and other
methods' outputs (params ``score.runs``) scored under every named protocol with the same code as
``pg2 score``, and one side-by-side table (runs × protocols).

Outputs (assets/score/): ``runs/<name>/`` (each run's metrics.json, per_pair.parquet,
problems.parquet, report.md), ``side_by_side.md``, ``metrics.json`` ({run: {protocol: metrics}},
DVC metrics) and ``summary.json``; one MLflow run ``score``.
"""

from __future__ import annotations

import time

from pg2_pipeline import fileio, summaries, tracking
from pg2_pipeline.score.project import project_real_set
from pg2_pipeline.score.report import COLUMNS, table
from pg2_pipeline.score.run import score_outputs
from pg2_pipeline.summaries import ScoreSummary

OURS = {"stage2": "PG² (ours: stage 1 + 2)", "stage1": "G1 (ours: stage 1)", "copy": "copy the condition image"}


def score_runs(params, paths) -> list[tuple[str, object, str]]:
    """(name, outputs path, layout) of every run the asset scores: ours first."""
    runs = [(OURS[m], paths.evaluation.method_outputs(m), "files") for m in params.evaluation.save_outputs]
    runs += [(r.name, paths.resolve(r.path), r.layout) for r in params.score.runs]
    names = [name for name, _, _ in runs]
    if not runs:
        raise ValueError("nothing to score: params evaluation.save_outputs and score.runs are both empty")
    if len(set(names)) != len(names):
        raise ValueError(f"params score.runs: run names must be unique, got {names}")
    return runs


def run_score(params, paths, *, log=print, progress: bool = True) -> ScoreSummary:
    start = time.perf_counter()
    cfg, files = params.score, paths.score
    pairs = paths.resolve(cfg.pairs) if cfg.pairs else paths.evaluation.outputs_pairs
    if not pairs.is_file():
        raise FileNotFoundError(f"{pairs}: no pairs to expect (materialize the evaluation with save_outputs, "
                                "or set params score.pairs)")  # fmt: skip
    real = project_real_set(paths, params, params.evaluation.fid_real_images)
    results = {}
    for name, path, layout in score_runs(params, paths):
        log(f"==> score: {name} ({path})")
        run = score_outputs(
            path, files.run(name), dataset=params.base.dataset, images=paths.resolve(params.image_index.root),
            pairs=pairs, layout=layout, protocols=list(cfg.protocols) or None, skip=list(cfg.skip),
            real_batches=real.batches if real else None, real_description=real.description if real else "",
            cache_dir=paths.local_cache.features, log=log, progress=progress,
        )  # fmt: skip
        results[name] = run.metrics
    side_by_side = table({}, runs=results)
    fileio.write_text(files.table, f"# Side by side ({params.base.dataset})\n\n{side_by_side}\n")
    fileio.write_json(files.metrics, {name: m["protocols"] for name, m in results.items()})
    summary = ScoreSummary(
        runs={name: m["pairs"] for name, m in results.items()},
        protocols={p: row["fingerprint"] for m in results.values() for p, row in m["protocols"].items()},
        seconds=round(time.perf_counter() - start, 2),
        mlflow_run_id=_log(params, paths, results),
    )
    summaries.write(files.summary, summary)
    return summary


def _log(params, paths, results: dict) -> str:
    import mlflow

    experiment = tracking.setup(params, paths.root)
    with mlflow.start_run(experiment_id=experiment, run_name="score", tags={"pg2.stage": "score"}) as active:
        for run, m in results.items():
            prefix = "".join(c if c.isalnum() else "_" for c in run).strip("_")
            values = {f"{prefix}.{proto}.{k}": float(v) for proto, row in m["protocols"].items()
                      for k, v in row.items() if k in COLUMNS and isinstance(v, (int, float))}  # fmt: skip
            if values:
                mlflow.log_metrics(values)
        for proto, fingerprint in {
            p: r["fingerprint"] for m in results.values() for p, r in m["protocols"].items()
        }.items():
            mlflow.set_tag(f"fingerprint.{proto}", fingerprint)
        mlflow.log_artifact(str(paths.score.table))
        mlflow.log_artifact(str(paths.score.metrics))
        return active.info.run_id
