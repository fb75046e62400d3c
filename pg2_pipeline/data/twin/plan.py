"""Which annotated images the twin renders for a profile (``plan_twin``).

Market-1501: train identities come from the standard train annotations, test identities from the
standard test annotations restricted to identities of the standard test pairs (the ones any
evaluation uses). Caps pick identities with a seeded RNG; every image of a chosen identity is
rendered. Distractor (``-1``) and junk (``0000``) boxes of the test folder are rendered too — all
of them at full scale, a proportional seeded sample otherwise — so ingest meets and excludes them
as it would in the real dataset.

DeepFashion: only test annotations are published. The twin splits their identities into its own
train and test parts, disjoint by identity, preferring identities of the standard test pairs for
its test part, then applies the caps.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from pg2_pipeline.config import Params
from pg2_pipeline.data.annotations import keypoints_array, standard_file
from pg2_pipeline.data.names import MARKET_SPLIT_DIRS, MarketName, parse_fashion_flat, parse_market_name
from pg2_pipeline.data.twin.appearance import rng_for
from pg2_pipeline.datasets import dataset_spec

DISTRACTOR_ID, JUNK_ID = "-1", "0000"
MIN_ANONYMOUS = 4  # capped profiles still get a few distractor and junk boxes of each kind


@dataclass(frozen=True)
class TwinImage:
    image_id: str  # standard name: Market file name / flattened DeepFashion name
    rel_path: str  # path under the dataset root in the real layout
    split: str  # 'train' | 'test'
    person_id: str  # Market '0002' ('-1' distractor, '0000' junk); DeepFashion 'fashionWOMEN...id00000002'
    camera: int | None  # Market 1..6; None for DeepFashion
    keypoints: np.ndarray = field(compare=False, repr=False)  # (18, 2) float32 (y, x), -1 missing

    @property
    def is_identity(self) -> bool:
        """A real person (not a Market distractor or junk box)."""
        return self.person_id not in (DISTRACTOR_ID, JUNK_ID)


def plan_twin(params: Params) -> list[TwinImage]:
    """The images to render, ordered by split ('train' first) then image id."""
    dataset = params.base.dataset
    if dataset == "market":
        items = _plan_market(params)
    elif dataset == "deepfashion":
        items = _plan_fashion(params)
    else:
        raise ValueError(f"params base.dataset: unknown dataset '{dataset}' (expected market or deepfashion)")
    return sorted(items, key=lambda it: (it.split != "train", it.image_id))


def _choose(ids: list[str], cap: int | None, rng: np.random.Generator, what: str) -> list[str]:
    if cap is not None and cap < 0:
        raise ValueError(f"params twin.{what}: must be >= 0 or null, got {cap}")
    if cap is None or cap >= len(ids):
        return list(ids)
    picked = rng.choice(len(ids), size=cap, replace=False)
    return sorted(ids[i] for i in picked)


def _annotations(stem: str) -> tuple[list[str], np.ndarray]:
    table = standard_file(stem)
    kp = keypoints_array(table)
    kp.setflags(write=False)  # shared by every TwinImage of the plan
    return table.column("name").to_pylist(), kp


def _pair_ids(stem: str, person_id) -> set[str]:
    pairs = standard_file(stem)
    return {person_id(n) for col in ("from", "to") for n in pairs.column(col).to_pylist()}


def _plan_market(params: Params) -> list[TwinImage]:
    spec, seed, twin = dataset_spec("market"), params.base.seed, params.twin
    items: list[TwinImage] = []

    def add(name: str, kp: np.ndarray, split: str) -> None:
        m = _market_name(name)
        rel = f"{MARKET_SPLIT_DIRS[split]}/{name}"
        items.append(TwinImage(name, rel, split, m.person_id, m.camera, kp))

    names, kps = _annotations(spec.annotations["train"])
    by_id = _group(names, lambda n: _market_name(n).person_id)
    ids = sorted(i for i in by_id if i not in (DISTRACTOR_ID, JUNK_ID))
    for pid in _choose(ids, twin.train_identities, rng_for(seed, "twin-plan", "market", "train"), "train_identities"):
        for i in by_id[pid]:
            add(names[i], kps[i], "train")

    names, kps = _annotations(spec.annotations["test"])
    by_id = _group(names, lambda n: _market_name(n).person_id)
    in_pairs = _pair_ids(spec.test_pairs, lambda n: _market_name(n).person_id)
    ids = sorted(i for i in by_id if i in in_pairs and i not in (DISTRACTOR_ID, JUNK_ID))
    chosen = _choose(ids, twin.test_identities, rng_for(seed, "twin-plan", "market", "test"), "test_identities")
    for pid in chosen:
        for i in by_id[pid]:
            add(names[i], kps[i], "test")
    share = len(chosen) / max(1, len(ids))
    for anon in (DISTRACTOR_ID, JUNK_ID):
        rows = by_id.get(anon, [])
        if twin.test_identities is not None and rows:
            n = min(len(rows), max(MIN_ANONYMOUS, round(share * len(rows))))
            rng = rng_for(seed, "twin-plan", "market", "anonymous", anon)
            rows = sorted(rows[i] for i in rng.choice(len(rows), size=n, replace=False))
        for i in rows:
            add(names[i], kps[i], "test")
    return items


def _market_name(name: str) -> MarketName:
    """Parses a Market file name; 18 real test boxes (and the pairs naming them) are called
    ``NNNN_cXsY_FFFFFF_BB.jpg.jpg`` in the dataset and the standard files — the twin keeps
    that name and reads identity and camera from the part before the doubled suffix."""
    return parse_market_name(name[: -len(".jpg")] if name.endswith(".jpg.jpg") else name)


def _plan_fashion(params: Params) -> list[TwinImage]:
    spec, seed, twin = dataset_spec("deepfashion"), params.base.seed, params.twin
    if not 0.0 < twin.test_fraction < 1.0:
        raise ValueError(f"params twin.test_fraction: must be strictly between 0 and 1, got {twin.test_fraction}")
    names, kps = _annotations(spec.annotations["test"])
    by_id = _group(names, lambda n: parse_fashion_flat(n).person_id)
    in_pairs = _pair_ids(spec.test_pairs, lambda n: parse_fashion_flat(n).person_id)
    rng = rng_for(seed, "twin-plan", "deepfashion", "split")
    paired = [i for i in sorted(by_id) if i in in_pairs]
    unpaired = [i for i in sorted(by_id) if i not in in_pairs]
    # Test identities come from the paired ones first, so the standard pairs stay usable.
    ranked = [paired[i] for i in rng.permutation(len(paired))] + [unpaired[i] for i in rng.permutation(len(unpaired))]
    n_test = min(len(ranked) - 1, max(1, round(twin.test_fraction * len(ranked))))
    parts = {"test": sorted(ranked[:n_test]), "train": sorted(ranked[n_test:])}
    items: list[TwinImage] = []
    for split, cap_name in (("train", "train_identities"), ("test", "test_identities")):
        cap = getattr(twin, cap_name)
        chosen = _choose(parts[split], cap, rng_for(seed, "twin-plan", "deepfashion", split), cap_name)
        for pid in chosen:
            for i in by_id[pid]:
                items.append(TwinImage(names[i], parse_fashion_flat(names[i]).path, split, pid, None, kps[i]))
    return items


def _group(names: list[str], person_id) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(names):
        groups[person_id(name)].append(i)
    return dict(groups)
