"""Precision and memory format chosen by measurement (params ``precision: auto``,
``channels_last: auto``).

A CPU flag is not a speed measurement: on one 2-core Xeon that lists ``avx512_bf16`` but has no
AMX, bf16 autocast made the quick G1 step 30 % slower than fp32 + channels_last, on another bf16
was 1.5× faster. So on the CPU, ``auto`` times a few steps of the *actual* stage (its networks,
its batch size, the real loader's batches) in every allowed mode, interleaved round by round so
that a burst of load on a shared machine hits every mode alike, and trains in the fastest one.

The result is cached in ``.pg2_cache/precision.json`` inside the project (never in HOME), keyed
by the CPU model, torch version, compute threads, device, processes and the stage settings that
change the computation (widths, batch, image size, D variant — not steps or learning rates). An
entry is trusted only when its stored fields hash to its key and its timings are complete; a
corrupt file or a foreign entry is reported and re-measured.

On CUDA nothing is timed: bf16 where the GPU supports it, channels_last.

    choice = choose_precision(Stage1, params, paths, loader, device)
    rt = choice.runtime(device)
    print(choice.line("stage1"))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from pg2_pipeline import fileio
from pg2_pipeline.runtime import Runtime, cpu_has_native_bf16, cpu_model

CACHE_VERSION = 1
# mode -> (precision, channels_last); the measured names of every combination
MODES = {"fp32": ("fp32", False), "fp32_cl": ("fp32", True), "bf16": ("bf16", False), "bf16_cl": ("bf16", True)}
# bf16 must beat fp32 by this share to be chosen: fp32 is the exact arithmetic, a tie keeps it
BF16_MARGIN = 0.05
# Settings of a stage section that change what one step computes (so its speed); the rest
# (steps, learning rates, schedules, logging) do not enter the cache key.
COMPUTE_FIELDS = ("batch_size", "base_channels", "z_dim", "relu_slope", "ema_decay", "d_base_channels", "d_input",
                  "d_arch", "spectral_norm", "lambda_perceptual", "compile")  # fmt: skip
WARMUP_STEPS = 1
MIN_ROUNDS, MAX_ROUNDS = 3, 6
BUDGET_SECONDS = 12.0  # rounds beyond the minimum stop once the measurement took this long


@dataclass(frozen=True)
class PrecisionChoice:
    """How a stage computes, and why."""

    precision: str  # "bf16" | "fp32"
    channels_last: bool
    how: str  # "params" | "measured" | "cached" | "cuda" | "fallback"
    reason: str
    images_per_second: dict[str, float] = field(default_factory=dict)  # measured mode -> images/s
    cpu: str = ""
    key: str = ""

    @property
    def mode(self) -> str:
        return self.precision + ("_cl" if self.channels_last else "")

    def runtime(self, device: torch.device) -> Runtime:
        return dataclasses.replace(Runtime.resolve(device.type, self.precision, self.channels_last), device=device)

    def record(self) -> dict:
        """What the summary and the MLflow run keep."""
        return asdict(self)

    def line(self, stage: str) -> str:
        """The printed line: the choice, the timings, where they came from."""
        mode = f"{self.precision}{' + channels_last' if self.channels_last else ''}"
        if not self.images_per_second:
            return f"{stage}: {mode} ({self.reason})"
        timings = " · ".join(f"{_label(m)} {v:.1f}" for m, v in self.images_per_second.items())
        return f"{stage}: {mode} — {self.reason}: {timings} images/s ({self.cpu}, torch {torch.__version__})"


def _label(mode: str) -> str:
    precision, channels_last = MODES[mode]
    return precision + ("+cl" if channels_last else "")


def candidate_modes(precision: str, channels_last: bool | str) -> tuple[list[str], str]:
    """The modes params allow on this CPU, and a note on what was left out and why."""
    precisions = ["fp32", "bf16"] if precision == "auto" else [precision]
    notes = ""
    if "bf16" in precisions and not cpu_has_native_bf16():
        precisions.remove("bf16")
        notes = "no native bf16 on this CPU (bf16 autocast would be emulated): fp32"
        if not precisions:  # explicit bf16 on such a CPU: what Runtime.resolve has always done
            precisions = ["fp32"]
    layouts = [False, True] if channels_last == "auto" else [bool(channels_last)]
    modes = [m for m, (p, cl) in MODES.items() if p in precisions and cl in layouts]
    return modes, notes


def cache_key_fields(stage: str, cfg, image_size: tuple[int, int], device: torch.device, processes: int) -> dict:
    return {
        "stage": stage,
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device.type,
        "processes": processes,
        "image_size": list(image_size),
        "config": {k: getattr(cfg, k) for k in COMPUTE_FIELDS if hasattr(cfg, k)},
    }


def _key(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def choose_precision(stage_cls, params, paths, loader, device: torch.device, *, processes: int = 1,
                     measure: bool = True, log=print) -> PrecisionChoice:  # fmt: skip
    """The precision and memory format stage ``stage_cls`` trains in (see the module docstring).
    ``measure=False`` (torchrun ranks other than 0) never times: it reads the cache or keeps fp32."""
    name = stage_cls.name
    cfg = params.section(name)
    explicit = cfg.precision != "auto" and cfg.channels_last != "auto"
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        precision = ("bf16" if bf16 else "fp32") if cfg.precision == "auto" else cfg.precision
        channels_last = True if cfg.channels_last == "auto" else bool(cfg.channels_last)
        reason = "CUDA: bf16 where the GPU supports it" if cfg.precision == "auto" else "params"
        return PrecisionChoice(precision, channels_last, "cuda" if not explicit else "params", reason)
    modes, note = candidate_modes(cfg.precision, cfg.channels_last)
    if len(modes) == 1:
        precision, channels_last = MODES[modes[0]]
        return PrecisionChoice(precision, channels_last, "params", note or "params", cpu=cpu_model())

    fields = cache_key_fields(name, cfg, (loader.height, loader.width), device, processes)
    key = _key(fields)
    cache_file = paths.local_cache.precision
    entries = _read_cache(cache_file, log)
    cached = entries.get(key)
    if cached is not None:
        problem = _check_entry(cached, key, modes)
        if problem is None:
            return _decide(cached["images_per_second"], modes, "cached", note, fields["cpu"], key)
        log(f"{name}: ignoring the cached precision timings in {cache_file} ({problem}); measuring again")
    if not measure:
        return PrecisionChoice("fp32", False, "fallback", "no cached timings on this rank: fp32", cpu=fields["cpu"])

    log(f"{name}: precision auto — timing {', '.join(_label(m) for m in modes)} on this CPU ({fields['cpu']})")
    timings, failures = time_modes(stage_cls, params, paths, loader, device, modes)
    if not timings:
        return PrecisionChoice("fp32", False, "fallback", "timing failed: " + "; ".join(failures), cpu=fields["cpu"])
    extra = "; ".join(failures)
    if failures:  # measured, but not every mode: trust it for this run only
        log(f"{name}: {extra}")
        modes = [m for m in modes if m in timings]
    else:
        entries[key] = {"fields": fields, "images_per_second": timings, "measured_at": time.time()}
        _write_cache(cache_file, entries)
    return _decide(timings, modes, "measured", "; ".join(x for x in (note, extra) if x), fields["cpu"], key)


def _decide(timings: dict[str, float], modes: list[str], how: str, note: str, cpu: str, key: str) -> PrecisionChoice:
    best = max(modes, key=lambda m: timings[m])
    if MODES[best][0] == "bf16":
        best_fp32 = max((m for m in modes if MODES[m][0] == "fp32"), key=lambda m: timings[m], default=None)
        if best_fp32 is not None and timings[best] < timings[best_fp32] * (1 + BF16_MARGIN):
            best = best_fp32  # within the margin: the exact arithmetic wins
    precision, channels_last = MODES[best]
    source = "measured here" if how == "measured" else "timed earlier on this machine (.pg2_cache/precision.json)"
    reason = f"fastest of the modes {source}" + (f"; {note}" if note else "")
    return PrecisionChoice(precision, channels_last, how, reason, {m: round(timings[m], 2) for m in modes}, cpu, key)


def time_modes(stage_cls, params, paths, loader, device: torch.device, modes: list[str]):
    """Images/s of ``stage_cls``'s real step in each mode ({mode: images/s}) and the modes that
    failed ("bf16: <error>"). Builds one throw-away stage per mode from a fixed seed and restores
    torch's random state afterwards, so the run that follows starts as it would have without it."""
    from pg2_pipeline.train.stage import StageContext

    rng = torch.get_rng_state()
    cfg = params.section(stage_cls.name)
    batch_size = loader.batch_size
    stages, batches, failures = {}, {}, []
    try:
        for mode in modes:
            precision, channels_last = MODES[mode]
            rt = Runtime.resolve(device.type, precision, channels_last)
            try:
                torch.manual_seed(0)
                ctx = StageContext(cfg, params, paths, (loader.height, loader.width), rt)
                stage = stage_cls.build(ctx)
                batches[mode] = [loader.batch(i).to(device, memory_format=rt.memory_format) for i in range(2)]
                for i in range(WARMUP_STEPS):
                    _checked_step(stage, batches[mode][i % 2])
                stages[mode] = stage
            except Exception as exc:  # noqa: BLE001 — a mode that cannot run is left out, with why
                failures.append(f"{_label(mode)} failed ({type(exc).__name__}: {exc}), left out")
        seconds: dict[str, list[float]] = {m: [] for m in stages}
        started = time.perf_counter()
        for round_ in range(MAX_ROUNDS):
            if round_ >= MIN_ROUNDS and time.perf_counter() - started > BUDGET_SECONDS:
                break
            for mode, stage in list(stages.items()):
                t0 = time.perf_counter()
                try:
                    _checked_step(stage, batches[mode][round_ % 2])
                except Exception as exc:  # noqa: BLE001 — e.g. a loss that diverges in this mode
                    failures.append(f"{_label(mode)} failed ({type(exc).__name__}: {exc}), left out")
                    del stages[mode], seconds[mode]
                    continue
                seconds[mode].append(time.perf_counter() - t0)
        return {m: batch_size / statistics.median(s) for m, s in seconds.items() if s}, failures
    finally:
        torch.set_rng_state(rng)


def _checked_step(stage, batch) -> None:
    result = stage.step(batch)
    bad = [k for k, v in result.items() if v != v or v in (float("inf"), float("-inf"))]
    if bad:
        raise FloatingPointError(f"{bad[0]} is {result[bad[0]]}")


def _read_cache(path: Path, log) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data["entries"], dict):
            raise ValueError(f"expected {{'version': {CACHE_VERSION}, 'entries': {{...}}}}")
        return data["entries"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log(f"ignoring the precision cache {path}: {exc}; it is measured again")
        return {}


def _check_entry(entry, key: str, modes: list[str]) -> str | None:
    """None when ``entry`` can be trusted for ``key`` and ``modes``, else what is wrong with it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("fields"), dict):
        return "not a timing record"
    if _key(entry["fields"]) != key:
        return "its fields do not match its key (foreign or edited entry)"
    timings = entry.get("images_per_second")
    if not isinstance(timings, dict) or any(
        not isinstance(timings.get(m), (int, float)) or not timings[m] > 0 for m in modes
    ):
        return f"timings missing or not positive for {', '.join(modes)}"
    return None


def _write_cache(path: Path, entries: dict) -> None:
    fileio.write_json(path, {"version": CACHE_VERSION, "entries": entries})
