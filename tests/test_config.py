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
