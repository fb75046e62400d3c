"""precision: auto — measured once per machine and stage config, cached in the project, never
trusted when the cache is corrupt or foreign, and falling back to fp32 with a reason."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from pg2_pipeline.config import load_params
from pg2_pipeline.inputs.loader import PairLoader
from pg2_pipeline.paths import LocalCachePaths, ProjectPaths
from pg2_pipeline.train import precision as P
from pg2_pipeline.train.stage1 import Stage1


@pytest.fixture
def setup(tiny_manifests, tmp_path, monkeypatch):
    """The tiny manifests with the precision cache redirected into this test's folder."""
    paths = ProjectPaths(tiny_manifests)
    cache = tmp_path / ".pg2_cache"
    monkeypatch.setattr(ProjectPaths, "local_cache", property(lambda self: LocalCachePaths(cache)))
    params = load_params(paths.params_file)
    params = dataclasses.replace(
        params, stage1=dataclasses.replace(params.stage1, precision="auto", channels_last="auto")
    )
    loader = PairLoader.from_manifest(paths, "train", params.stage1.batch_size, seed=0)
    return params, paths, loader, cache


def choose(setup, log=None, **kwargs):
    params, paths, loader, _ = setup
    lines = [] if log is None else log
    choice = P.choose_precision(Stage1, params, paths, loader, torch.device("cpu"), log=lines.append, **kwargs)
    return choice, lines


def test_auto_measures_every_allowed_mode_caches_it_and_reuses_it(setup):
    rng = torch.get_rng_state()
    first, lines = choose(setup)
    assert torch.equal(torch.get_rng_state(), rng)  # timing leaves the run's random stream alone
    assert first.how == "measured"
    expected = {"fp32", "fp32_cl"} | ({"bf16", "bf16_cl"} if P.cpu_has_native_bf16() else set())
    assert set(first.images_per_second) == expected
    assert all(v > 0 for v in first.images_per_second.values())
    assert first.mode in expected and first.cpu == P.cpu_model()
    assert any("timing" in line for line in lines)
    # the choice is the fastest (fp32 kept when bf16 is within the margin)
    ips = first.images_per_second
    fastest_fp32 = max(ips[m] for m in ips if m.startswith("fp32"))
    assert ips[first.mode] >= fastest_fp32 or ips[first.mode] >= fastest_fp32 * (1 + P.BF16_MARGIN)

    again, lines = choose(setup)
    assert again.how == "cached" and not lines  # no timing, no complaint
    assert (again.mode, again.images_per_second, again.key) == (first.mode, first.images_per_second, first.key)
    assert "fp32" in again.line("stage1") and "images/s" in again.line("stage1")


def test_a_corrupt_cache_file_is_reported_and_measured_again(setup):
    _, _, _, cache = setup
    cache.mkdir(parents=True)
    (cache / "precision.json").write_text('{"version": 1, "entr')
    choice, lines = choose(setup)
    assert choice.how == "measured"
    assert any("ignoring the precision cache" in line for line in lines)
    assert json.loads((cache / "precision.json").read_text())["entries"]  # rewritten, readable


def test_a_foreign_or_edited_entry_is_never_trusted(setup):
    _, _, _, cache = setup
    first, _ = choose(setup)
    data = json.loads((cache / "precision.json").read_text())
    entry = data["entries"][first.key]
    entry["fields"]["cpu"] = "Some Other CPU"  # copied from another machine: its key no longer matches
    entry["images_per_second"] = {m: 1e9 if m == "fp32" else 1.0 for m in entry["images_per_second"]}
    (cache / "precision.json").write_text(json.dumps(data))
    choice, lines = choose(setup)
    assert choice.how == "measured" and choice.images_per_second["fp32"] < 1e9
    assert any("do not match its key" in line for line in lines)


def test_the_key_covers_what_changes_the_computation_only(setup):
    params, paths, loader, _ = setup
    cfg = params.stage1
    base = P.cache_key_fields("stage1", cfg, (128, 64), torch.device("cpu"), 1)
    assert P._key(base) == P._key(P.cache_key_fields("stage1", dataclasses.replace(cfg, steps=9, lr=1.0), (128, 64),
                                                     torch.device("cpu"), 1))  # fmt: skip
    for other in (
        P.cache_key_fields("stage1", dataclasses.replace(cfg, base_channels=16), (128, 64), torch.device("cpu"), 1),
        P.cache_key_fields("stage1", dataclasses.replace(cfg, batch_size=4), (128, 64), torch.device("cpu"), 1),
        P.cache_key_fields("stage1", cfg, (256, 176), torch.device("cpu"), 1),
        P.cache_key_fields("stage1", cfg, (128, 64), torch.device("cpu"), 2),
        P.cache_key_fields("stage2", cfg, (128, 64), torch.device("cpu"), 1),
    ):
        assert P._key(other) != P._key(base)


def test_explicit_params_are_not_measured(setup):
    params, paths, loader, cache = setup
    fixed = dataclasses.replace(params, stage1=dataclasses.replace(params.stage1, precision="fp32", channels_last=True))
    choice = P.choose_precision(Stage1, fixed, paths, loader, torch.device("cpu"), log=pytest.fail)
    assert (choice.precision, choice.channels_last, choice.how) == ("fp32", True, "params")
    assert not (cache / "precision.json").exists()


def test_when_timing_fails_it_falls_back_to_fp32_and_says_why(setup, monkeypatch):
    def broken(ctx):
        raise RuntimeError("no kernel for this dtype")

    monkeypatch.setattr(Stage1, "build", classmethod(lambda cls, ctx: broken(ctx)))
    choice, _ = choose(setup)
    assert (choice.precision, choice.channels_last, choice.how) == ("fp32", False, "fallback")
    assert "timing failed" in choice.reason and "no kernel for this dtype" in choice.reason


def test_a_failing_mode_is_left_out_with_its_reason(setup, monkeypatch):
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: True)
    real_build = Stage1.build.__func__

    def build(cls, ctx):
        if ctx.runtime.amp is not None:
            raise RuntimeError("bf16 unsupported here")
        return real_build(cls, ctx)

    monkeypatch.setattr(Stage1, "build", classmethod(build))
    choice, lines = choose(setup)
    assert choice.precision == "fp32" and set(choice.images_per_second) == {"fp32", "fp32_cl"}
    assert "bf16 failed" in choice.reason and "bf16 unsupported here" in choice.reason
    assert any("bf16 unsupported here" in line for line in lines)
    assert not (setup[3] / "precision.json").exists()  # an incomplete measurement is not cached


def test_bf16_must_win_by_the_margin():
    both = ["fp32", "fp32_cl", "bf16", "bf16_cl"]
    close = P._decide({"fp32": 100, "fp32_cl": 110, "bf16": 90, "bf16_cl": 112}, both, "measured", "", "cpu", "k")
    assert close.mode == "fp32_cl"
    clear = P._decide({"fp32": 100, "fp32_cl": 110, "bf16": 90, "bf16_cl": 150}, both, "measured", "", "cpu", "k")
    assert clear.mode == "bf16_cl"


def test_cuda_rule_without_timing(setup, monkeypatch):
    params, paths, loader, _ = setup
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    choice = P.choose_precision(Stage1, params, paths, loader, torch.device("cuda"), log=pytest.fail)
    assert (choice.precision, choice.channels_last, choice.how) == ("bf16", True, "cuda")


def test_a_loss_that_diverges_while_timing_leaves_the_mode_out_instead_of_crashing(setup, monkeypatch):
    real_step = Stage1.step
    calls = {"n": 0}

    def step(self, batch, return_images=False):
        calls["n"] += 1
        result = real_step(self, batch, return_images)
        if calls["n"] > 4:  # past every mode's warm-up: the timed rounds diverge (lr 1e30 does this)
            result["loss_G1"] = float("nan")
        return result

    monkeypatch.setattr(Stage1, "step", step)
    choice, _ = choose(setup)
    assert (choice.precision, choice.channels_last, choice.how) == ("fp32", False, "fallback")
    assert "loss_G1 is nan" in choice.reason
