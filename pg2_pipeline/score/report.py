"""What a scoring run writes: ``metrics.json``, ``per_pair.parquet``, ``problems.parquet`` and
``report.md`` (the side-by-side table, each protocol's definition and fingerprint, and what was
missing, unmatched or bad and why), each atomically; and the printed table."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pg2_pipeline import fileio

COLUMNS = ("ssim", "mask_ssim", "psnr", "l1", "lpips", "fid", "pckh")
LISTED_PER_KIND = 100  # problems listed in report.md per kind (all of them are in problems.parquet)


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def table(metrics: dict, runs: dict[str, dict] | None = None) -> str:
    """Markdown table: one row per (run,) protocol with its fingerprint; '–' = null (see why)."""
    runs = runs if runs is not None else {"": metrics}
    head = ["run"] if len(runs) > 1 or "" not in runs else []
    lines = ["| " + " | ".join([*head, "protocol", "fingerprint", "pairs", *COLUMNS]) + " |",
             "|" + "---|" * (len(head) + 3) + "---:|" * len(COLUMNS)]  # fmt: skip
    for run, m in runs.items():
        for name, row in m["protocols"].items():
            cells = [*([run] if head else []), name, f"`{row['fingerprint']}`", str(row["pairs"])]
            lines.append("| " + " | ".join(cells + [_cell(row.get(c)) for c in COLUMNS]) + " |")
    return "\n".join(lines)


def counts_line(metrics: dict) -> str:
    c = metrics["pairs"]
    return (f"scored {c['scored']:,} of {c['expected']:,} expected pairs; missing {c['missing']:,}, "
            f"unmatched {c['unmatched']:,}, bad {c['bad']:,}")  # fmt: skip


def write_outputs(run, scorer, protocols, dataset: str, real_description: str, out: Path, *, generated: Path) -> None:
    metrics = run.metrics
    out.mkdir(parents=True, exist_ok=True)
    fileio.write_json(out / "metrics.json", metrics)
    fileio.write_bytes(out / "per_pair.parquet", _parquet(_per_pair(scorer)))
    problems = pa.table({"kind": [p.kind for p in run.problems], "source": [p.source for p in run.problems],
                         "reason": [p.reason for p in run.problems]})  # fmt: skip
    fileio.write_bytes(out / "problems.parquet", _parquet(problems))
    fileio.write_text(out / "report.md", _markdown(run, protocols, dataset, real_description, generated))
    print("\n" + table(metrics))
    for name, row in metrics["protocols"].items():
        for metric, why in row.get("why_null", {}).items():
            print(f"  {name}.{metric}: {why}")
    print(counts_line(metrics))


def _per_pair(scorer) -> pa.Table:
    columns = scorer.per_pair_columns()
    keys = sorted({k for rows in columns.values() for k in rows})
    data: dict[str, list] = {"from": [k[0] for k in keys], "to": [k[1] for k in keys]}
    for name, rows in columns.items():
        metrics = sorted({m for values in rows.values() for m in values})
        for m in metrics:
            data[f"{name}.{m}"] = [rows.get(k, {}).get(m) for k in keys]
    return pa.table(data)


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _markdown(run, protocols, dataset: str, real_description: str, generated: Path) -> str:
    m = run.metrics
    lines = [f"# Scores of `{generated}` ({dataset})", "", f"Layout: {run.how}", "", table(m), "",
             counts_line(m) + f" ({run.seconds:.1f} s).", ""]  # fmt: skip
    nulls = [(n, k, why) for n, row in m["protocols"].items() for k, why in row.get("why_null", {}).items()]
    if nulls:
        lines += ["Empty cells:", ""] + [f"- {n} {k}: {why}" for n, k, why in nulls] + [""]
    if real_description:
        lines += [f"FID real set: {real_description}.", ""]
    lines += ["## Protocols", "", "Equal fingerprints mean comparable numbers.", ""]
    for p in protocols:
        g = p.on(dataset)
        lines += [f"### {p.name} — `{p.fingerprint}`", "", f"{p.lineage}.", "", p.doc, "",
                  f"- compared at {g.size[0]}×{g.size[1]} (H×W); generated sizes taken: "
                  + ", ".join(f"{h}×{w}" for h, w in g.accepts)
                  + f"; other sizes: {g.resize_generated}; targets: {g.prepare_target}"
                  + (f"; padded to {g.pad_to[0]}×{g.pad_to[1]} with {g.pad_value} (SSIM/PSNR/L1)" if g.pad_to else ""),
                  f"- SSIM: {p.ssim}" + (f" (also {', '.join(p.ssim_extra)})" if p.ssim_extra else "")
                  + (f"; mask-SSIM with the {p.mask_ssim} pose mask on {', '.join(p.mask_datasets)}" if p.mask_ssim
                     else "; no mask-SSIM"),
                  f"- LPIPS: {p.lpips.net} v{p.lpips.version} on {p.lpips.inputs}" if p.lpips else "- LPIPS: none",
                  f"- FID: {p.fid.features}, {p.fid.resize}, real set {p.fid.real_set}" if p.fid else "- FID: none",
                  "- sources: " + "; ".join(p.sources), ""]  # fmt: skip
    by_kind = Counter(p.kind for p in run.problems)
    if run.problems:
        lines += ["## What was not scored", ""]
        for kind in ("missing", "unmatched", "bad"):
            listed = [p for p in run.problems if p.kind == kind]
            if not listed:
                continue
            lines += [f"### {kind} ({by_kind[kind]:,})", ""]
            lines += [f"- `{p.source}`: {p.reason}" for p in listed[:LISTED_PER_KIND]]
            if len(listed) > LISTED_PER_KIND:
                lines.append(f"- … {len(listed) - LISTED_PER_KIND:,} more in problems.parquet")
            lines.append("")
    return "\n".join(lines)


def log_to_mlflow(run, experiment_id: str, name: str = "score") -> str:
    """One MLflow run with every protocol's metrics (``<protocol>.<metric>``), the counts, the
    fingerprints as tags and the output files; returns its id."""
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags={"pg2.stage": "score"}) as active:
        m = run.metrics
        mlflow.log_metrics({f"pairs_{k}": float(v) for k, v in m["pairs"].items()})
        for proto, row in m["protocols"].items():
            mlflow.set_tag(f"fingerprint.{proto}", row["fingerprint"])
            values = {f"{proto}.{k}": float(v) for k, v in row.items() if k in COLUMNS and isinstance(v, (int, float))}
            values |= {f"{proto}.{k}": float(v) for k, v in row.items() if k.startswith("ssim_") and
                       isinstance(v, (int, float))}  # fmt: skip
            if values:
                mlflow.log_metrics(values)
        mlflow.log_params({"dataset": m["dataset"], "layout": m["layout"]})
        for f in ("metrics.json", "report.md", "per_pair.parquet"):
            mlflow.log_artifact(str(run.out / f))
        return active.info.run_id
