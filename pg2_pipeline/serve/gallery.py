"""The dataset's test images and their poses, as the page's two galleries.

A client names an image by its ``image_id`` only; the file is found through the image index
(``assets/image_index/index.parquet``), never by joining client text to a path. Keypoints come from
the keypoints asset, in the image's own frame (``size``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from pg2_pipeline.skeleton import num_visible

PEOPLE = 24  # people shown (one image each), spread over the test identities
POSES = 24  # poses shown, from other images of other identities
MIN_GALLERY_JOINTS = 10  # a gallery pose should show most of a body


@dataclass(frozen=True)
class GalleryImage:
    image_id: str
    person_id: str
    path: Path  # from the index, under the dataset root
    size: tuple[int, int]  # (height, width)
    keypoints: np.ndarray  # (18, 2) (y, x) in the image, -1 = missing


@dataclass(frozen=True)
class Gallery:
    images: dict[str, GalleryImage] = field(default_factory=dict)  # every test image with a pose
    people: tuple[str, ...] = ()
    poses: tuple[str, ...] = ()
    note: str | None = None  # why the gallery is empty

    def get(self, image_id: str) -> GalleryImage | None:
        return self.images.get(image_id)

    def to_dict(self) -> dict:
        def pose(image: GalleryImage) -> dict:
            return {"size": list(image.size), "keypoints": np.round(image.keypoints, 2).tolist()}

        return {
            "people": [
                {"image_id": i, "person_id": self.images[i].person_id, "url": f"/api/images/{i}"} for i in self.people
            ],
            "poses": [{"image_id": i, **pose(self.images[i])} for i in self.poses],
            "note": self.note,
        }

    @classmethod
    def from_project(cls, root: Path | None) -> Gallery:
        """The test split of the project's image index and keypoints; an empty gallery (with a
        note saying why) when the project or its assets are missing."""
        from pg2_pipeline import schemas
        from pg2_pipeline.config import load_params
        from pg2_pipeline.paths import ProjectPaths

        if root is None:
            return cls(note="no pg2-pipeline project here: the galleries are empty (upload photos instead)")
        paths = ProjectPaths(root)
        try:
            index = schemas.read_table(paths.image_index_table, schemas.IMAGE_INDEX, schemas.IMAGE_INDEX_NAME)
            poses = schemas.read_table(paths.keypoints_table, schemas.KEYPOINTS, schemas.KEYPOINTS_NAME)
            dataset_root = paths.resolve(load_params(paths.params_file).image_index.root).resolve()
        except (FileNotFoundError, ValueError) as exc:
            return cls(note=f"no dataset gallery ({exc}); run `make demo` or `pg2 materialize keypoints`")
        rows = index.filter(pc.equal(index.column("split"), "test")).to_pylist()
        found = poses.filter(poses.column("found"))
        yx = dict(zip(found.column("image_id").to_pylist(), schemas.joints_yx(found), strict=True))
        images = {}
        for row in sorted(rows, key=lambda r: r["image_id"]):
            path = (dataset_root / row["rel_path"]).resolve()
            if row["image_id"] in yx and path.is_relative_to(dataset_root):
                size = (int(row["height"]), int(row["width"]))
                images[row["image_id"]] = GalleryImage(
                    row["image_id"], row["person_id"], path, size, yx[row["image_id"]]
                )
        if not images:
            return cls(note="the image index has no test images with keypoints")
        return cls(images, *_choose(images))


def _choose(images: dict[str, GalleryImage]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """People: the first image of identities spread over the sorted list. Poses: another image of
    the next identity, with most joints visible, so that a person and a pose at the same place in
    the galleries are different people."""
    by_person: dict[str, list[GalleryImage]] = {}
    for image in images.values():
        by_person.setdefault(image.person_id, []).append(image)
    persons = sorted(by_person)
    picked = [persons[i] for i in np.linspace(0, len(persons) - 1, min(PEOPLE, len(persons))).round().astype(int)]
    picked = list(dict.fromkeys(picked))
    people = tuple(by_person[p][0].image_id for p in picked)
    poses = []
    for k in range(len(picked)):
        candidates = [im for im in by_person[picked[(k + 1) % len(picked)]] if im.image_id not in people]
        full = [im for im in candidates if num_visible(im.keypoints) >= MIN_GALLERY_JOINTS]
        if full or candidates:
            poses.append((full or candidates)[-1].image_id)
    return people, tuple(dict.fromkeys(poses))[:POSES]
