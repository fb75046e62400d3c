"""GPU readiness check: is this machine ready to train and evaluate PG² at the paper's size?

    .venv/bin/python bench/gpu_check.py                    # CUDA when present (sized for ≤ 6 min on one H100)
    .venv/bin/python bench/gpu_check.py --device cpu --quick    # the same sections, shrunk, on a CPU

One command, one JSON object on stdout (progress on stderr), exit code 1 when a section failed.
Sections, each recorded with ``ok``, ``seconds`` and, when it failed, its ``error`` (the others
still run):

* ``environment``: torch / CUDA / cuDNN / NCCL versions, the device, its peak FLOP/s, TF32 flags.
* ``steps``: the paper-size (C = 128, 128×64) stage-1 step (one G1 update) and stage-2 step
  (frozen G1 + one G2 and one D update), built by the stages' own ``build`` from the ``full``
  profile's params, in bf16 autocast and fp32 (both channels_last, as training runs them) at
  batch 16 and 64: images/s, model FLOPs (``FlopCounterMode``, forward + backward), MFU against
  the device's dense bf16 / fp32 peak and the peak memory allocated.
* ``pipeline``: a copy of the project on the ``tiny`` profile with ``device: cuda`` for the
  stages and the evaluation, every asset materialized by ``pg2 materialize`` (the DVC door);
  seconds, and the device each stage's summary says it ran on.
* ``loader``: the real training loader (:class:`~pg2_pipeline.inputs.loader.PairLoader` on that
  project's manifests) delivering batches on the device, against the fastest step's demand.
* ``evaluation``: pairs/s of the evaluation's own per-batch scorer (generation by a paper-size
  PG², SSIM under every protocol, PSNR, L1, LPIPS, FID features; PCKh timed apart: BlazePose runs
  on the CPU).
* ``torchrun``: stage 1 of that project launched through torchrun (1 process, backend nccl; gloo
  on a CPU), as the params ``nproc_per_node`` path does.

Goals (GPU only; recorded with pass/fail, not a condition of the exit code): ≥ 35 % MFU for the
bf16 paper-size G1 step on an H100 (or H200, the same compute), and the loader ≥ 2× the step's
demand. On a machine without CUDA, the default (``--device auto``) runs the CPU check
(``--device cpu --quick``: C = 8, tiny batches, a few steps, a shortened tiny pipeline), so that
``make bench`` passes there; its figures are no GPU figures and MFU is null.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from bench_train import count_flops, synthetic_batch, timed_calls

from pg2_pipeline.config import load_params, params_from_dict
from pg2_pipeline.models import build_generator
from pg2_pipeline.models.pg2 import PG2
from pg2_pipeline.paths import ASSET_NAMES, ProjectPaths
from pg2_pipeline.runtime import Runtime, cpu_has_native_bf16, keep_large_allocations
from pg2_pipeline.train.precision import cpu_model
from pg2_pipeline.train.stage import StageContext
from pg2_pipeline.train.stage1 import Stage1
from pg2_pipeline.train.stage2 import Stage2

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests/ is a plain folder: its project-copy helpers
    sys.path.insert(0, str(ROOT))

from tests.conftest import copy_project  # noqa: E402

IMAGE_SIZE = (128, 64)  # Market-1501, the paper's size
PRECISIONS = {"bf16": torch.bfloat16, "fp32": None}  # autocast dtype; None = plain float32
# Dense peak TFLOP/s (no sparsity) by device name, most specific name first: (name part, bf16
# tensor core, tf32 tensor core, fp32 without tensor cores). NVIDIA's datasheets; the H200 has the
# H100 SXM's compute (and more memory). An unknown device gets no MFU, with the reason.
PEAK_TFLOPS = (
    ("H100 PCIe", 756.0, 378.0, 51.2),
    ("H100 NVL", 835.5, 417.5, 60.0),  # the datasheet's sparse figures halved
    ("H100", 989.4, 494.7, 66.9),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("H200", 989.4, 494.7, 66.9),
    ("A100", 312.0, 156.0, 19.5),
)
GOAL_MFU, GOAL_MFU_DEVICES = 0.35, ("H100", "H200")
GOAL_LOADER_RATIO = 2.0
SECTIONS = ("environment", "steps", "pipeline", "loader", "evaluation", "torchrun")


@dataclass(frozen=True)
class Plan:
    """How big each section is: the GPU check, or its CPU-sized copy (``--quick``)."""

    base_channels: int  # C of the measured G1 / G2 (D keeps the paper's 64 at full size)
    d_base_channels: int
    batches: tuple[int, ...]  # step and loader batch sizes
    warmup: int  # untimed steps (the first one counts the FLOPs)
    iters: int  # timed steps
    loader_batches: int  # timed loader batches per batch size
    eval_batch: int
    eval_batches: int  # timed scoring batches (after one warm-up batch)
    pckh_batches: int  # timed batches with PCKh (BlazePose); 0 = not timed
    fid: bool  # FID features in the timed scoring
    timeout_s: int  # per subprocess (pipeline, torchrun)
    # params of the tiny project beyond the devices: the CPU check shortens its training and
    # evaluation (the GPU check runs the tiny profile as it is)
    pipeline: dict = field(default_factory=dict)


FULL = Plan(128, 64, (16, 64), warmup=3, iters=10, loader_batches=40, eval_batch=32, eval_batches=4,
            pckh_batches=1, fid=True, timeout_s=300)  # fmt: skip
_EVERY = {"checkpoint_every": 2, "sample_every": 2, "log_every": 2, "validate_every": 0}
QUICK = Plan(8, 8, (2, 4), warmup=1, iters=2, loader_batches=5, eval_batch=4, eval_batches=2, pckh_batches=0,
             fid=False, timeout_s=240, pipeline={
                 "twin": {"train_identities": 8, "test_identities": 4},
                 "stage1": {"steps": 4, "batch_size": 4, "precision": "fp32", "channels_last": False, **_EVERY},
                 "stage2": {"steps": 2, "batch_size": 4, "precision": "fp32", "channels_last": False, **_EVERY},
                 "evaluation": {"max_pairs": 4, "batch_size": 4, "fid": False, "pckh": False, "examples": 1},
                 "score": {"skip": ["fid", "pckh"]},
             })  # fmt: skip


def log(message: str) -> None:
    print(f"[gpu_check] {message}", file=sys.stderr, flush=True)


def peaks(device: torch.device) -> dict | None:
    """The device's dense peak TFLOP/s by precision, None where none is known (CPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for part, bf16, tf32, fp32 in PEAK_TFLOPS:
        if part in name:
            return {"matched": part, "bf16": bf16, "tf32": tf32, "fp32": fp32}
    return None


def tf32_flags() -> dict:
    """Whether fp32 convolutions / matmuls may run on TF32 tensor cores (torch's defaults: convs
    yes, matmuls no); training sets neither, so the fp32 step runs what these say."""
    return {
        "cudnn_conv": bool(torch.backends.cudnn.allow_tf32),
        "matmul": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def mfu(flops_per_s: float, precision: str, device: torch.device) -> dict:
    """Model FLOP/s utilisation against the device's peak for ``precision`` (fp32: the peak
    without tensor cores; with TF32 allowed the ratio to the TF32 peak is given too)."""
    table = peaks(device)
    if table is None:
        why = "a CPU: no peak FLOP/s table" if device.type != "cuda" else "no peak FLOP/s known for this GPU"
        return {"mfu": None, "mfu_reason": why}
    out = {"mfu": round(flops_per_s / (table[precision] * 1e12), 4), "peak_tflops": table[precision]}
    flags = tf32_flags()
    if precision == "fp32" and (flags["cudnn_conv"] or flags["matmul"]):
        out["mfu_vs_tf32_peak"] = round(flops_per_s / (table["tf32"] * 1e12), 4)
        out["mfu_note"] = "TF32 was allowed (see environment.tf32): fp32 MFU can exceed the fp32 peak's 1.0"
    return out


def nccl_version() -> str | None:
    try:
        return ".".join(map(str, torch.cuda.nccl.version()))
    except (AttributeError, RuntimeError):  # a build without NCCL: the torchrun section will say more
        return None


def child_env(root: Path, threads: int | None) -> dict:
    """The environment of a pipeline subprocess: its own project, Dagster instance and MLflow store."""
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI")}
    env |= {"PG2_PROJECT_DIR": str(root), "PYTHONUNBUFFERED": "1"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def set_profile_params(root: Path, profile: str, sections: dict[str, dict]) -> None:
    """Values written into each section's ``profiles.<profile>`` block, so they win over the
    profile's own (a section's plain values do not)."""
    path = root / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    for name, values in sections.items():
        blocks = raw[name].setdefault("profiles", {})
        blocks[profile] = {**(blocks.get(profile) or {}), **values}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def run_logged(cmd: list[str], cwd: Path, env: dict, log_file: Path, timeout: int) -> tuple[int, float]:
    """Runs ``cmd`` with its output in ``log_file``; (exit code, seconds). On timeout its whole
    process group goes (torchrun's workers too, which would otherwise keep the GPU) and the code
    is 124."""
    start = time.perf_counter()
    with log_file.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = 124
    return code, time.perf_counter() - start


def tail(path: Path, chars: int = 2500) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else ""


def materialized(root: Path) -> set[str]:
    """The assets that the project's Dagster instance has a materialization of."""
    from dagster import AssetKey, DagsterInstance

    home = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(root / ".dagster_home")  # the instance `pg2` made there
    try:
        with DagsterInstance.get() as instance:
            return {n for n in ASSET_NAMES if instance.get_latest_materialization_event(AssetKey(n)) is not None}
    finally:
        if home is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = home


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} was not written")
    return json.loads(path.read_text())


class Check:
    """The sections, run in order; each may use what an earlier one left (``self.project``)."""

    def __init__(self, device: torch.device, plan: Plan, quick: bool, threads: int | None, work: Path):
        self.device, self.plan, self.quick, self.threads, self.work = device, plan, quick, threads, work
        self.project: Path | None = None  # the tiny project materialized by ``pipeline``
        self.step_rows: list[dict] = []

    # ---------------------------------------------------------------------------------------
    def environment(self) -> dict:
        out = {
            "torch": torch.__version__,
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "quick": self.quick,
        }
        if self.device.type != "cuda":
            return out | {"device_name": cpu_model(), "cpu_native_bf16": cpu_has_native_bf16()}
        props = torch.cuda.get_device_properties(self.device)
        return out | {
            "device_name": torch.cuda.get_device_name(self.device),
            "capability": list(torch.cuda.get_device_capability(self.device)),
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "nccl": nccl_version(),
            "bf16_supported": torch.cuda.is_bf16_supported(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "tf32": tf32_flags(),
            "peak_tflops": peaks(self.device),
        }

    # ---------------------------------------------------------------------------------------
    def steps(self) -> dict:
        plan, device = self.plan, self.device
        raw = yaml.safe_load((ROOT / "params.yaml").read_text())
        raw["base"].update(profile="full", dataset="market")  # the paper's settings
        params = params_from_dict(raw, source="params.yaml (profile full)")
        paths = ProjectPaths(self.work / "steps")  # stage 2 loads G1 from stage 1's folder
        g1_cfg = dataclasses.replace(params.stage1, base_channels=plan.base_channels)
        fp32 = Runtime(device, None, torch.channels_last)
        Stage1.build(StageContext(g1_cfg, params, paths, IMAGE_SIZE, fp32)).export(paths.stage("stage1"))
        errors = []
        for stage_cls in (Stage1, Stage2):
            for precision in PRECISIONS:
                for batch in plan.batches:
                    what = f"{stage_cls.name} {precision} batch {batch}"
                    log(f"steps: {what}")
                    try:
                        self.step_rows.append(self._measure(stage_cls, params, paths, precision, batch))
                    except Exception as exc:  # one configuration (e.g. out of memory) does not hide the others
                        errors.append(f"{what}: {type(exc).__name__}: {exc}")
                    finally:
                        self.free()
        out = {
            "image_size": list(IMAGE_SIZE),
            "memory_format": "channels_last",
            "timing": f"median of {plan.iters} timed steps after {plan.warmup} untimed (the first counts FLOPs)",
            "results": self.step_rows,
        }
        if errors:
            raise SectionError("; ".join(errors), out)
        return out

    def _measure(self, stage_cls, params, paths: ProjectPaths, precision: str, batch: int) -> dict:
        plan, device = self.plan, self.device
        # precision stated, never ``auto``: each measurement is of the mode it names
        widths = {
            "base_channels": plan.base_channels,
            "batch_size": batch,
            "precision": precision,
            "channels_last": True,
        }
        if stage_cls is Stage2:
            widths["d_base_channels"] = plan.d_base_channels
        cfg = dataclasses.replace(params.section(stage_cls.name), **widths)
        rt = Runtime(device, PRECISIONS[precision], torch.channels_last)  # explicit: no auto choice
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        stage = stage_cls.build(StageContext(cfg, params, paths, IMAGE_SIZE, rt))
        data = synthetic_batch(*IMAGE_SIZE, batch, device).to(device, memory_format=rt.memory_format)
        last: dict = {}
        step = lambda: last.update(losses=stage.step(data))
        flops = count_flops(step)
        for _ in range(plan.warmup - 1):
            step()
        times = timed_calls(step, plan.iters, device)
        seconds = statistics.median(times)
        row = {
            "stage": stage_cls.name,
            "precision": precision,
            "batch": batch,
            "base_channels": plan.base_channels,
            "s_per_iter": round(seconds, 5),
            "s_per_iter_min": round(min(times), 5),
            "images_per_s": round(batch / seconds, 2),
            "gflop_per_image": round(flops / batch / 1e9, 2),
            "achieved_tflop_per_s": round(flops / seconds / 1e12, 4),
            **mfu(flops / seconds, precision, device),
            "finite": all(math.isfinite(v) for v in last["losses"].values()),
        }
        if device.type == "cuda":
            row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
            row["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved(device) / 2**30, 3)
        else:
            row["peak_memory_gib"], row["peak_memory_reason"] = None, "a CPU: no per-step allocator peak"
        return row

    def free(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # ---------------------------------------------------------------------------------------
    def pipeline(self) -> dict:
        root = copy_project(self.work / "project", "tiny")
        dev = self.device.type
        sections = {s: {"device": dev} for s in ("stage1", "stage2", "evaluation")}
        for name, values in self.plan.pipeline.items():
            sections[name] = {**sections.get(name, {}), **values}
        set_profile_params(root, "tiny", sections)
        out = {"profile": "tiny", "params": sections}
        start = time.perf_counter()
        self._materialize(root, list(ASSET_NAMES), "pipeline", out)
        # A failed promotion gate (the champion gate: a short run need not beat copying the
        # condition image) marks the Dagster run failed, so it skips the assets after it, while
        # `pg2 materialize` exits 0 and `dvc repro` goes on, one stage at a time: do the same.
        skipped = [n for n in ASSET_NAMES if n not in materialized(root)]
        if skipped:
            out["after_promotion_gate"] = skipped
            self._materialize(root, skipped, "pipeline_rest", out)
        out["seconds_end_to_end"] = round(time.perf_counter() - start, 1)
        if missing := [n for n in ASSET_NAMES if n not in materialized(root)]:
            raise SectionError(f"not materialized: {', '.join(missing)} (log: {self.work / 'pipeline.log'})", out)
        paths = ProjectPaths(root)
        out["ran_on"] = {n: read_json(paths.summary(n))["device"] for n in ("stage1", "stage2", "evaluation")}
        self.project = root
        if wrong := {n: d for n, d in out["ran_on"].items() if d != dev}:
            raise SectionError(f"asked for device {dev}, but the summaries say {wrong}", out)
        return out

    def _materialize(self, root: Path, names: list[str], what: str, out: dict) -> None:
        """``pg2 materialize NAMES`` in the project ``root`` (the command every DVC stage runs)."""
        log_file = self.work / f"{what}.log"
        log(f"{what}: pg2 materialize {' '.join(names)} in {root} (log: {log_file})")
        cmd = [sys.executable, "-m", "pg2_pipeline", "materialize", *names]
        code, seconds = run_logged(cmd, root, child_env(root, self.threads), log_file, self.plan.timeout_s)
        out[f"{what}_exit_code"], out[f"{what}_seconds"] = code, round(seconds, 1)
        gate = [line for line in tail(log_file, 100_000).splitlines() if "champion_gate did not pass" in line]
        if gate:
            out["promotion_gate"] = gate[-1]
        if code != 0:
            raise SectionError(f"pg2 materialize exited {code} (124: timed out): {tail(log_file)}", out)

    # ---------------------------------------------------------------------------------------
    def loader(self) -> dict:
        from pg2_pipeline.inputs.loader import PairLoader

        paths = self._project_paths("loader")
        rows = []
        for batch in self.plan.batches:
            loader = PairLoader.from_manifest(paths, "train", batch, seed=0, flip=True, device=self.device)
            loader.batch(0)
            n = self.plan.loader_batches
            steps = iter(range(1, n + 1))
            seconds = sum(timed_calls(lambda: loader.batch(next(steps)), n, self.device))
            rate = batch * n / seconds
            demand = max((r["images_per_s"] for r in self.step_rows if r["batch"] == batch), default=None)
            rows.append({
                "batch": batch,
                "images_per_s": round(rate, 1),
                "step_demand_images_per_s": demand,  # the fastest measured step at this batch
                "ratio_to_step": round(rate / demand, 2) if demand else None,
                "exceeds_step": rate > demand if demand else None,
            })  # fmt: skip
        return {
            "split": "train (tiny project: its cache is small and stays in memory)",
            "flip": True,
            "results": rows,
        }

    def _project_paths(self, section: str) -> ProjectPaths:
        if self.project is None:
            raise RuntimeError(
                f"{section} needs the tiny project that the pipeline section materializes (it failed or did not run)"
            )
        return ProjectPaths(self.project)

    # ---------------------------------------------------------------------------------------
    def evaluation(self) -> dict:
        # the evaluation's own pieces: its per-batch scorer and the networks it builds from params
        from pg2_pipeline.evaluate.stage import _estimator, _fid_features, _lpips, _score_batch
        from pg2_pipeline.inputs.loader import PairLoader

        plan, device = self.plan, self.device
        paths = self._project_paths("evaluation")
        params = load_params(paths.params_file)
        cfg = dataclasses.replace(params.evaluation, lpips=True, fid=plan.fid, pckh=False)
        g1 = build_generator("g1", height=IMAGE_SIZE[0], width=IMAGE_SIZE[1], base_channels=plan.base_channels)
        g2 = build_generator("g2", height=IMAGE_SIZE[0], width=IMAGE_SIZE[1], base_channels=plan.base_channels)
        pg2 = PG2(g1, g2).to(device).eval()
        loader = PairLoader.from_manifest(paths, "test", plan.eval_batch, shuffle=False, device=device)
        needed = 1 + max(plan.eval_batches, plan.pckh_batches)
        if loader.steps_per_epoch < needed:
            raise RuntimeError(f"{len(loader.pairs)} test pairs: fewer than {needed} batches of {plan.eval_batch}")

        def rate(nets, batches: int) -> tuple[float, list[str]]:
            """Pairs/s over ``batches`` batches after a warm-up one, and what the scorer computed."""
            scores = _score_batch(loader, 0, cfg, device, nets)
            steps = iter(range(1, batches + 1))
            seconds = sum(timed_calls(lambda: _score_batch(loader, next(steps), cfg, device, nets), batches, device))
            per_pair = sorted({name.split(".", 1)[1] for name in scores.per_pair})
            return plan.eval_batch * batches / seconds, per_pair + ["fid features"] * bool(scores.fid)

        nets = (pg2, _lpips(cfg, device), _fid_features(cfg, device), None, None)
        pairs_per_s, metrics = rate(nets, plan.eval_batches)
        out = {
            "batch": plan.eval_batch,
            "generator": f"PG² (G1 + G2) at C = {plan.base_channels}, untrained (the same work as trained)",
            "methods": "stage2, stage1 and copy, as the evaluation scores them",
            "metrics": metrics,
            "pairs_per_s": round(pairs_per_s, 1),
        }
        if plan.pckh_batches:
            estimator = _estimator(dataclasses.replace(cfg, pckh=True))
            try:
                out["pairs_per_s_with_pckh"] = round(rate((*nets[:4], estimator), plan.pckh_batches)[0], 1)
            finally:
                estimator.close()
            out["pckh_note"] = "BlazePose runs on the CPU whatever the device (4 images per pair)"
        else:
            out["pairs_per_s_with_pckh"], out["pckh_note"] = None, "not timed in --quick"
        return out

    # ---------------------------------------------------------------------------------------
    def torchrun(self) -> dict:
        from pg2_pipeline.train.loop import training_command

        self._project_paths("torchrun")
        root = self.work / "torchrun"
        shutil.copytree(self.project, root, ignore=shutil.ignore_patterns(".dagster_home"))
        shutil.rmtree(root / "assets" / "stage1")  # a fresh run, not a resume of the finished one
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        set_profile_params(root, "tiny", {"stage1": {"nproc_per_node": 1, "backend": backend}})
        paths = ProjectPaths(root)
        cfg = load_params(paths.params_file).stage1
        cmd = training_command("stage1", cfg, paths)
        log(f"torchrun: {' '.join(cmd)} (log: {self.work / 'torchrun.log'})")
        code, seconds = run_logged(
            cmd, root, child_env(root, self.threads), self.work / "torchrun.log", self.plan.timeout_s
        )
        out = {"backend": backend, "nproc_per_node": 1, "exit_code": code, "seconds": round(seconds, 1)}
        if code != 0:
            raise SectionError(f"torchrun exited {code} (124: timed out): {tail(self.work / 'torchrun.log')}", out)
        summary = read_json(paths.stage("stage1").summary)
        out |= {k: summary[k] for k in ("device", "steps", "resumed_from_step", "processes", "images_per_second")}
        if (summary["device"], summary["steps"], summary["resumed_from_step"]) != (self.device.type, cfg.steps, 0):
            raise SectionError(
                f"expected {cfg.steps} fresh steps on {self.device.type}, the summary says otherwise", out
            )
        return out


class SectionError(RuntimeError):
    """A section failed after measuring something: the message, and what it measured."""

    def __init__(self, message: str, partial: dict):
        super().__init__(message)
        self.partial = partial


def run_section(check: Check, name: str) -> dict:
    log(f"{name} ...")
    start = time.perf_counter()
    try:
        out = {"ok": True, **getattr(check, name)()}
    except Exception as exc:
        partial = exc.partial if isinstance(exc, SectionError) else {}
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}", **partial}
        if not isinstance(exc, SectionError):
            out["traceback"] = traceback.format_exc(limit=-4)
        log(f"{name} FAILED: {out['error'][:300]}")
    check.free()  # the subprocesses of the next section get the GPU memory this one cached
    out["seconds"] = round(time.perf_counter() - start, 1)
    log(f"{name} done in {out['seconds']} s")
    return out


def goals(check: Check, sections: dict) -> list[dict]:
    """The issue's goals with pass/fail where they apply (a GPU; the MFU goal on an H100/H200)."""
    device = check.device
    on_gpu = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if on_gpu else cpu_model()
    g1 = [r for r in check.step_rows if r["stage"] == "stage1" and r["precision"] == "bf16"]
    by_batch = {str(r["batch"]): r["mfu"] for r in g1}
    best = max((v for v in by_batch.values() if v is not None), default=None)
    if not on_gpu:
        why = "a GPU goal: this run is on the CPU"
    elif check.quick:
        why = "--quick measures no paper-size step"
    elif not any(part in name for part in GOAL_MFU_DEVICES):
        why = f"set for an H100 (or H200); this is {name}"
    else:
        why = None
    mfu_goal = {
        "goal": f"bf16 paper-size G1 step: MFU >= {GOAL_MFU:.0%} on an H100",
        "value": best,
        "by_batch": by_batch,
        "passed": None if why else (best is not None and best >= GOAL_MFU),
    }
    ratios = [r["ratio_to_step"] for r in sections["loader"].get("results", [])]
    worst = min((r for r in ratios if r is not None), default=None)
    loader_goal = {
        "goal": f"the loader delivers >= {GOAL_LOADER_RATIO:g}x the fastest step's images/s at each batch",
        "value": worst,
        "passed": (worst is not None and worst >= GOAL_LOADER_RATIO) if on_gpu else None,
    }
    if why:
        mfu_goal["why_not_judged"] = why
    if not on_gpu:
        loader_goal["why_not_judged"] = "a GPU goal: this run is on the CPU"
    return [mfu_goal, loader_goal]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"),
                        help="auto: CUDA when present, else the CPU check (--device cpu --quick)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="shrunk sections (C = 8, tiny batches, a few steps)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (CPU only)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma list of " + ",".join(SECTIONS))
    parser.add_argument("--work-dir", type=Path, default=None, help="where the project copies go (default: a temp dir)")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="let cuDNN time its kernels in the steps section (training does not set it)")  # fmt: skip
    parser.add_argument(
        "--keep", action="store_true", help="keep the work dir (it is kept anyway when a section fails)"
    )
    args = parser.parse_args(argv)

    notes = []
    wanted = args.sections.split(",")
    if unknown := [s for s in wanted if s not in SECTIONS]:
        raise SystemExit(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device cuda: CUDA is not available (torch {torch.__version__}, CUDA {torch.version.cuda})")
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    quick = args.quick
    if device.type == "cpu" and not quick:
        if args.device == "cpu":
            raise SystemExit("the full check is sized for a GPU (a paper-size step at batch 64 takes minutes on a "
                             "CPU): add --quick, or use bench/bench_train.py for CPU training figures")  # fmt: skip
        quick = True
        notes.append("no CUDA here: ran the CPU check (--device cpu --quick); its figures are no GPU figures")
        log(notes[-1])
    threads = None
    if device.type == "cpu":
        threads = args.threads
        torch.set_num_threads(threads)
    keep_large_allocations()  # as training does
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    work = Path(tempfile.mkdtemp(prefix="pg2-gpu-check-", dir=args.work_dir))
    check = Check(device, QUICK if quick else FULL, quick, threads, work)

    started = time.perf_counter()
    sections = {}
    for name in SECTIONS:
        sections[name] = run_section(check, name) if name in wanted else {"ok": None, "skipped": "not in --sections"}
    failed = [n for n, s in sections.items() if s["ok"] is False]
    kept = bool(failed) or args.keep
    if not kept:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "check": "GPU readiness (bench/gpu_check.py)",
        "device_requested": args.device,
        "device": device.type,
        "device_name": sections["environment"].get("device_name", ""),
        "quick": quick,
        "notes": notes,
        "ok": not failed,
        "failed_sections": failed,
        "sections": sections,
        "goals": goals(check, sections),
        "work_dir": str(work) if kept else None,
        "total_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=1))
    log(f"{'all sections passed' if not failed else 'FAILED: ' + ', '.join(failed)} in {report['total_s']} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
