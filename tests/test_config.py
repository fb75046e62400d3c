import dataclasses
from pathlib import Path

import pytest
import yaml

from pg2_pipeline.config import ParamsError, load_params, params_from_dict

REPO = Path(__file__).resolve().parent.parent


def raw_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_project_params_load_and_are_frozen():
    params = load_params(REPO / "params.yaml")
    assert params.base.dataset in ("market", "deepfashion")
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.base.seed = 1


def test_profile_overrides_apply_after_dataset_overrides():
    raw = raw_params()
    raw["base"]["profile"] = "tiny"
    raw["twin"]["datasets"] = {"market": {"train_identities": 7, "jpeg_quality": 80}}
    raw["twin"]["profiles"] = {"tiny": {"train_identities": 3}}
    params = params_from_dict(raw)
    assert params.twin.train_identities == 3  # profile wins over dataset
    assert params.twin.jpeg_quality == 80  # dataset override kept
    raw["base"]["profile"] = "full"
    assert params_from_dict(raw).twin.train_identities == 7


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r["twin"].update(colour="red"), "unknown key 'twin.colour'"),
        (lambda r: r["twin"].pop("jpeg_quality"), "missing key 'twin.jpeg_quality' (int)"),
        (lambda r: r["twin"].update(jpeg_quality="high"), "'twin.jpeg_quality' expected int, got str 'high'"),
        (lambda r: r["twin"].update(jpeg_quality=True), "'twin.jpeg_quality' expected int"),
        (lambda r: r["base"].update(dataset="coco"), "'base.dataset' expected one of 'market', 'deepfashion'"),
        (lambda r: r.update(extra={}), "unknown section 'extra'"),
        (lambda r: r.pop("image_index"), "missing section 'image_index'"),
        (lambda r: r["twin"].update(profiles={"huge": {}}), "unknown key 'twin.profiles.huge'"),
        (lambda r: r["twin"].update(profiles={"tiny": {"nope": 1}}), "unknown key 'twin.profiles.tiny.nope'"),
        (lambda r: r["image_index"].update(max_quarantine_fraction="a lot"), "expected float, got str 'a lot'"),
    ],
)
def test_bad_params_name_the_key_and_expected_type(mutate, message):
    raw = raw_params()
    mutate(raw)
    with pytest.raises(ParamsError) as err:
        params_from_dict(raw, source="params.yaml")
    assert message in str(err.value)


def test_float_written_without_a_dot_is_accepted():
    raw = raw_params()
    raw["image_index"]["max_quarantine_fraction"] = "2e-2"  # PyYAML reads this as a string
    assert params_from_dict(raw).image_index.max_quarantine_fraction == pytest.approx(0.02)
    raw["image_index"]["max_quarantine_fraction"] = 1  # an int is a valid float
    assert params_from_dict(raw).image_index.max_quarantine_fraction == 1.0


def test_section_hash_changes_with_its_section_only():
    raw = raw_params()
    a = params_from_dict(raw)
    raw["twin"]["jpeg_quality"] = 50
    b = params_from_dict(raw)
    assert a.section_hash("image_index") == b.section_hash("image_index")
    assert a.section_hash("twin") != b.section_hash("twin")


def test_missing_params_file_is_named(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "params.yaml")


def test_stage2_variants_apply_between_datasets_and_profiles():
    raw = raw_params()
    raw["base"]["profile"] = "full"
    params = params_from_dict(raw)
    assert params.stage2.variant == "pg2" and params.stage2.d_input == "image"  # the paper, by default
    raw["stage2"]["variant"] = "pg2plus"
    plus = params_from_dict(raw).stage2
    assert (plus.d_input, plus.d_arch, plus.spectral_norm, plus.lambda_perceptual) == ("pair_pose", "patch", True, 10.0)
    raw["stage2"]["profiles"]["full"] = {"spectral_norm": False}  # a profile still wins over the variant
    assert params_from_dict(raw).stage2.spectral_norm is False
    raw["stage2"]["profiles"]["full"] = {"variant": "pg2_cond"}  # and may choose the variant
    assert params_from_dict(raw).stage2.d_input == "pair_pose" and not params_from_dict(raw).stage2.spectral_norm


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r["stage2"].update(variant="best"), "'stage2.variant' is 'best', expected one of 'pg2', 'pg2_cond'"),
        (lambda r: r["stage2"]["variants"].update(odd={"d_colour": 1}), "unknown key 'stage2.variants.odd.d_colour'"),
        (lambda r: r["stage2"].update(d_input="triple"), "'stage2.d_input' expected one of 'image', 'pair'"),
        (lambda r: r["stage2"].update(lambda_perceptual=-1), "'stage2.lambda_perceptual' must be >= 0"),
        (lambda r: r["stage2"].update(d_lr=0), "'stage2.d_lr' must be > 0 or null"),
        (lambda r: r["twin"].update(variants={"x": {}}), "'twin.variants' needs a 'twin.variant' key"),
        (lambda r: r["stage1"].update(select="best_fid"), "'stage1.select' expected one of 'last', 'best_ssim'"),
        (
            lambda r: r["stage1"]["profiles"]["full"].update(select="best_ssim", validate_every=0),
            "'stage1.select' is 'best_ssim', which needs stage1.validate_every > 0",
        ),
        (
            lambda r: (
                r["stage1"]["profiles"]["full"].update(select="best_ssim"),
                r["pairs"].update(validation_identities=0),
            ),
            "needs a validation split (pairs.validation_identities > 0)",
        ),
        (lambda r: r["pairs"].update(validation_identities=-1), "'pairs.validation_identities' must be >= 0"),
        (lambda r: r["stage1"].update(relu_slope=-0.1), "'stage1.relu_slope' must be in [0, 1)"),
        (lambda r: r["stage1"].update(ema_decay=1.0), "'stage1.ema_decay' must be in [0, 1)"),
        (lambda r: r["stage1"].update(ema_decay=-0.5), "'stage1.ema_decay' must be in [0, 1)"),
    ],
)
def test_bad_stage_params_name_the_key(mutate, message):
    raw = raw_params()
    raw["base"]["profile"] = "full"
    raw["stage1"]["profiles"].setdefault("full", {})
    mutate(raw)
    with pytest.raises(ParamsError) as err:
        params_from_dict(raw, source="params.yaml")
    assert message in str(err.value)
