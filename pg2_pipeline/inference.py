"""Pose transfer with a registered generator: the Python API behind ``pg2 generate``.

    from pg2_pipeline.inference import PoseTransfer
    pt = PoseTransfer("models:/pg2-generator@champion")
    out = pt.generate("person.jpg", pose_from="other.jpg")      # or pose="pose.json"
    pt.save(out, "out.png")

The condition image is cropped around its person (BlazePose keypoints, offline) to the model's
frame — unless it already has the model's size, when it is taken as an aligned crop, like the
dataset images. The target pose comes from a keypoint file or from another photo (BlazePose,
cropped the same way). Pose files are JSON::

    {"size": [128, 64], "keypoints": [[y, x], ... 18 OpenPose-18 joints, -1 for missing]}

``size`` is the frame the coordinates refer to (default: the model's); they are scaled to the
model's frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from pg2_pipeline import fileio
from pg2_pipeline.skeleton import MISSING, NUM_JOINTS, visible

CROP_MARGIN = 0.12  # of the person's keypoint box, around it (hair, feet and hands extend past joints)


class InferenceError(ValueError):
    """Bad input to pose transfer; the message names the file and what was expected."""


class ModelNotFoundError(InferenceError):
    pass


class NoPersonError(InferenceError):
    pass


def read_image(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InferenceError(f"{path}: no such image file")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InferenceError(f"{path}: cannot read the image (not a JPEG/PNG/BMP file, or corrupt)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_pose_file(path: str | Path, model_hw: tuple[int, int]) -> np.ndarray:
    """(18, 2) keypoints in the model's frame from a pose JSON file (see the module doc)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InferenceError(f"{path}: no such pose file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InferenceError(f"{path}: not a JSON pose file ({exc})") from None
    if not isinstance(data, dict) or "keypoints" not in data:
        raise InferenceError(
            f"{path}: expected an object with 'keypoints' (18 [y, x] pairs) and optional 'size' [height, width]"
        )
    kp = data["keypoints"]
    if not isinstance(kp, list) or len(kp) != NUM_JOINTS or not all(isinstance(p, list) and len(p) == 2 for p in kp):
        raise InferenceError(
            f"{path}: 'keypoints' must hold {NUM_JOINTS} [y, x] pairs (OpenPose-18 order), got {str(kp)[:80]}"
        )
    try:
        yx = np.array(kp, dtype=np.float32)
    except (TypeError, ValueError):
        raise InferenceError(f"{path}: 'keypoints' must be numbers") from None
    bad = [i for i, point in enumerate(yx) if not np.isfinite(point).all()]
    if bad:
        raise InferenceError(
            f"{path}: 'keypoints' must be finite numbers, joints {bad} are not (NaN or infinity); "
            "-1 marks a missing joint"
        )
    size = data.get("size", list(model_hw))
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, (int, float)) and s > 0 for s in size)):
        raise InferenceError(f"{path}: 'size' must be [height, width] in pixels, got {size!r}")
    vis = visible(yx)
    if not vis.any():
        raise InferenceError(f"{path}: every joint is missing (-1): there is no pose to transfer to")
    if (yx[vis] > np.array(size, np.float32)).any():
        raise InferenceError(f"{path}: a keypoint lies outside the {size[0]}x{size[1]} frame given by 'size'")
    out = yx * np.array([model_hw[0] / size[0], model_hw[1] / size[1]], np.float32)
    out[~vis] = MISSING
    return out


def crop_to_frame(image: np.ndarray, yx: np.ndarray, model_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The person (box of its visible keypoints plus a margin) cropped to the model's aspect
    ratio and resized to ``model_hw``; returns (crop, keypoints in the crop)."""
    h, w = model_hw
    vis = visible(yx)
    pts = yx[vis]
    (y0, x0), (y1, x1) = pts.min(0), pts.max(0)
    bh, bw = max(y1 - y0, 1.0), max(x1 - x0, 1.0)
    y0, y1 = y0 - CROP_MARGIN * bh * 1.5, y1 + CROP_MARGIN * bh  # more room above the head
    x0, x1 = x0 - CROP_MARGIN * bw * 2, x1 + CROP_MARGIN * bw * 2
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    box_h = max(y1 - y0, (x1 - x0) * h / w)
    scale = h / box_h
    # affine map from the image to the model frame: scale, then centre the box
    m = np.array([[scale, 0, w / 2 - cx * scale], [0, scale, h / 2 - cy * scale]], np.float32)
    crop = cv2.warpAffine(
        image, m, (w, h), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    out = np.full_like(yx, MISSING)
    out[vis, 0] = yx[vis, 0] * scale + m[1, 2]
    out[vis, 1] = yx[vis, 1] * scale + m[0, 2]
    out[vis] = np.clip(out[vis], 0, [h - 1, w - 1])
    return crop, out


class PoseTransfer:
    """A registered PG² generator, ready to move a person into a new pose."""

    def __init__(self, model_uri: str, tracking_uri: str | None = None):
        import mlflow
        from mlflow.exceptions import MlflowException

        if tracking_uri:
            from pg2_pipeline.tracking import use_tracking_uri

            use_tracking_uri(tracking_uri)
        if not model_uri.startswith(("models:/", "runs:/")) and not Path(model_uri).exists():
            raise ModelNotFoundError(
                f"'{model_uri}' is not a model URI "
                "(expected models:/<name>@<alias>, models:/<name>/<version> or a model folder)"
            )
        try:
            self.model = mlflow.pyfunc.load_model(model_uri)
        except MlflowException as exc:
            raise ModelNotFoundError(
                f"cannot load {model_uri}: {exc.message} (tracking store {mlflow.get_tracking_uri()})"
            ) from None
        metadata = self.model.metadata.metadata or {}
        if "image_size" not in metadata:
            raise ModelNotFoundError(f"{model_uri} is not a pg2-pipeline generator (no image_size in its metadata)")
        self.model_uri = model_uri
        self.height, self.width = metadata["image_size"]
        self._estimator = None

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def _keypoints(self, image: np.ndarray, source: str) -> np.ndarray:
        from pg2_pipeline.pose.blazepose import BlazePoseEstimator

        if self._estimator is None:
            self._estimator = BlazePoseEstimator()
        estimate = self._estimator.estimate(image)
        if not estimate.person_found or visible(estimate.yx).sum() < 4:
            raise NoPersonError(
                f"{source}: no person found (BlazePose detected {int(visible(estimate.yx).sum())} joints)"
            )
        return estimate.yx

    def condition_frame(self, image: np.ndarray | str | Path, source: str = "condition image") -> np.ndarray:
        """The condition image in the model's frame (uint8 RGB (H, W, 3))."""
        if not isinstance(image, np.ndarray):
            source, image = str(image), read_image(image)
        if image.shape[:2] == self.size:
            return image  # already an aligned person crop, like the dataset images
        crop, _ = crop_to_frame(image, self._keypoints(image, source), self.size)
        return crop

    def target_pose(
        self, pose: str | Path | None = None, pose_from: np.ndarray | str | Path | None = None
    ) -> np.ndarray:
        """(18, 2) target keypoints in the model's frame from a pose file or another photo."""
        if (pose is None) == (pose_from is None):
            raise InferenceError("give exactly one target pose: a pose file or a photo to take it from")
        if pose is not None:
            return read_pose_file(pose, self.size)
        source = str(pose_from) if not isinstance(pose_from, np.ndarray) else "pose image"
        image = pose_from if isinstance(pose_from, np.ndarray) else read_image(pose_from)
        yx = self._keypoints(image, source)
        if image.shape[:2] == self.size:
            return yx
        return crop_to_frame(image, yx, self.size)[1]

    def generate(self, image, pose=None, pose_from=None) -> np.ndarray:
        """The person of ``image`` in the target pose: uint8 RGB (H, W, 3)."""
        condition = self.condition_frame(image)
        yx = self.target_pose(pose, pose_from)
        out = self.model.predict({"condition": condition[None], "target_keypoints": yx[None].astype(np.float32)})
        return np.asarray(out)[0]

    @staticmethod
    def save(image: np.ndarray, path: str | Path) -> Path:
        return fileio.write_png(path, image)

    def close(self) -> None:
        if self._estimator is not None:
            self._estimator.close()
            self._estimator = None
