"""File names of Market-1501 and DeepFashion In-shop, both ways.

Market-1501: ``0002_c1s1_000451_03.jpg`` = person 0002, camera 1, sequence 1, frame 000451,
box 03. Person ``-1`` marks distractors and ``0000`` junk boxes; neither is a usable identity.

DeepFashion In-shop: ``img/MEN/Denim/id_00000080/01_1_front.jpg``. The pose-transfer community
flattens it to ``fashionMENDenimid0000008001_1front.jpg`` (category underscores kept). The
identity is the prefix up to the 8-digit id: ``fashionMENDenimid00000080``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKET_EXCLUDED_IDS = ("-1", "0000")  # distractors, junk
MARKET_SPLIT_DIRS = {"train": "bounding_box_train", "test": "bounding_box_test"}

_MARKET_RE = re.compile(r"^(?P<pid>-1|\d{4})_c(?P<cam>\d)s(?P<seq>\d)_(?P<frame>\d{6})_(?P<box>\d{2})\.jpg(?:\.jpg)?$")
_FASHION_FLAT_RE = re.compile(
    r"^fashion(?P<gender>MEN|WOMEN)(?P<category>[A-Za-z_]+?)id(?P<id>\d{8})(?P<item>\d{2})"
    r"_(?P<pose>\d+)(?P<view>[a-z]+)\.jpg$"
)
_FASHION_PATH_RE = re.compile(
    r"^img/(?P<gender>MEN|WOMEN)/(?P<category>[A-Za-z_]+)/id_(?P<id>\d{8})/"
    r"(?P<item>\d{2})_(?P<pose>\d+)_(?P<view>[a-z]+)\.jpg$"
)


class BadNameError(ValueError):
    """A file name that does not follow the dataset's naming scheme."""


@dataclass(frozen=True)
class MarketName:
    person_id: str  # '0002'; '-1' distractor, '0000' junk
    camera: int  # 1..6
    sequence: int
    frame: int
    box: int

    @property
    def is_excluded(self) -> bool:
        return self.person_id in MARKET_EXCLUDED_IDS


def parse_market_name(name: str) -> MarketName:
    m = _MARKET_RE.match(name)
    if not m:
        raise BadNameError(f"'{name}' is not a Market-1501 file name (expected e.g. 0002_c1s1_000451_03.jpg)")
    return MarketName(
        person_id=m["pid"],
        camera=int(m["cam"]),
        sequence=int(m["seq"]),
        frame=int(m["frame"]),
        box=int(m["box"]),
    )


@dataclass(frozen=True)
class FashionName:
    gender: str  # MEN | WOMEN
    category: str  # e.g. Blouses_Shirts
    item_id: str  # 8 digits
    item: str  # 2 digits: the outfit photographed
    pose: int  # 1..7
    view: str  # front, side, back, full, additional, flat

    @property
    def person_id(self) -> str:
        return f"fashion{self.gender}{self.category}id{self.item_id}"

    @property
    def flat(self) -> str:
        return f"{self.person_id}{self.item}_{self.pose}{self.view}.jpg"

    @property
    def path(self) -> str:
        return f"img/{self.gender}/{self.category}/id_{self.item_id}/{self.item}_{self.pose}_{self.view}.jpg"


def parse_fashion_flat(name: str) -> FashionName:
    m = _FASHION_FLAT_RE.match(name)
    if not m:
        raise BadNameError(
            f"'{name}' is not a flattened DeepFashion name (expected e.g. fashionMENDenimid0000008001_1front.jpg)"
        )
    return _fashion(m)


def parse_fashion_path(path: str) -> FashionName:
    m = _FASHION_PATH_RE.match(path.replace("\\", "/"))
    if not m:
        raise BadNameError(
            f"'{path}' is not a DeepFashion In-shop path (expected e.g. img/MEN/Denim/id_00000080/01_1_front.jpg)"
        )
    return _fashion(m)


def _fashion(m: re.Match) -> FashionName:
    return FashionName(
        gender=m["gender"],
        category=m["category"],
        item_id=m["id"],
        item=m["item"],
        pose=int(m["pose"]),
        view=m["view"],
    )


def fashion_path_to_flat(path: str) -> str:
    return parse_fashion_path(path).flat


def fashion_flat_to_path(name: str) -> str:
    return parse_fashion_flat(name).path


def person_id_of(dataset: str, image_id: str) -> str:
    """Identity of a standard image name (Market file name or flattened DeepFashion name)."""
    if dataset == "market":
        return parse_market_name(image_id).person_id
    if dataset == "deepfashion":
        return parse_fashion_flat(image_id).person_id
    raise ValueError(f"unknown dataset '{dataset}' (expected market or deepfashion)")
