"""Facts about the two supported datasets, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    height: int  # standard image size (the annotation coordinates use it)
    width: int
    # Packaged standard files (pg2_pipeline/data/standard/<stem>.parquet) per split.
    annotations: dict[str, str]
    test_pairs: str
    # Sizes the literature cuts out of the standard frame instead of resizing to them:
    # (height, width) -> (top, left) of the window, no resampling (pg2_pipeline/inputs/cache.py).
    crops: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)


MARKET = DatasetSpec(
    name="market",
    height=128,
    width=64,
    annotations={"train": "market_annotation_train", "test": "market_annotation_test"},
    test_pairs="market_pairs_test",
)
DEEPFASHION = DatasetSpec(
    name="deepfashion",
    height=256,
    width=256,
    # Only the standard *test* annotations are published with the pairs; the twin splits their
    # identities into its own train and test parts (see data/twin).
    annotations={"test": "fashion_annotation_test"},
    test_pairs="fashion_pairs_test",
    # 256×176, the size most recent papers report: PATN's and DPTN's data keeps columns
    # 40..215 of the 256×256 images (PIL crop((40, 0, 216, 256)) in PATN's
    # generate_fashion_datasets.py): the same pixels, keypoints at x − 40.
    crops={(256, 176): (0, 40)},
)
DATASETS = {spec.name: spec for spec in (MARKET, DEEPFASHION)}


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset '{name}' (expected one of {', '.join(DATASETS)})") from None
