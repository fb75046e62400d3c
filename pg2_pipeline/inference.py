"""Pose transfer with a registered generator: the Python API behind ``pg2 generate``.

    from pg2_pipeline.inference import PoseTransfer
    pt = PoseTransfer("models:/pg2-generator@champion")
    out = pt.generate("person.jpg", pose_from="other.jpg")      # or pose="pose.json"
    pt.save(out, "out.png")
    result = pt.transfer("person.jpg", pose="pose.json")        # G1 and PG² of one forward, keypoints
    print(pt.card.headline())                                   # what the registry says it was trained on

The condition image is cropped around its person (BlazePose keypoints, offline) to the model's
frame — unless it already has the model's size, when it is taken as an aligned crop, like the
dataset images. The target pose comes from a keypoint file or from another photo (BlazePose,
cropped the same way). Pose files are JSON::

    {"size": [128, 64], "keypoints": [[y, x], ... 18 OpenPose-18 joints, -1 for missing]}

``size`` is the frame the coordinates refer to (default: the model's); they are scaled to the
model's frame. A pose needs at least :data:`MIN_POSE_JOINTS` joints.

Third-party chatter stays out of the user's terminal: MediaPipe's native absl/TFLite lines are
captured (and shown only when BlazePose fails), and MLflow's advice about ``predict`` type hints,
which models registered before the hints were added still trigger, is dropped at load time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pg2_pipeline import fileio
from pg2_pipeline.skeleton import MISSING, NUM_JOINTS, visible

CROP_MARGIN = 0.12  # of the person's keypoint box, around it (hair, feet and hands extend past joints)
# A photo's pose needs this many joints from BlazePose (fewer is a hand or a face, not a person);
# a given pose is held to the same bar.
MIN_POSE_JOINTS = 4
# Decoding a 10 MB PNG can take gigabytes (a 20000x20000 image compresses to almost nothing):
# the header's size is checked before the pixels are decoded.
MAX_IMAGE_PIXELS = 40_000_000
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg")
# MLflow's UserWarning on loading a model whose predict() has no type hints (versions registered
# before pyfunc_model.py had them): advice for the model's author, noise for its user.
_TYPE_HINT_ADVICE = "Add type hints to the `predict` method"


class InferenceError(ValueError):
    """Bad input to pose transfer; the message names the file and what was expected."""


class ModelNotFoundError(InferenceError):
    pass


class NoPersonError(InferenceError):
    pass


def decode_image(data: bytes, source: str) -> np.ndarray:
    """uint8 RGB (H, W, 3) from the bytes of an image file; ``source`` names it in errors."""
    if not data:
        raise InferenceError(f"{source}: the file is empty")
    width = height = 0
    with contextlib.suppress(Exception):  # a format PIL does not know is left to OpenCV
        from PIL import Image

        width, height = Image.open(io.BytesIO(data)).size
    if width * height > MAX_IMAGE_PIXELS:
        raise InferenceError(
            f"{source}: {width}x{height} pixels is more than the {MAX_IMAGE_PIXELS // 1_000_000} megapixels "
            "accepted; scale the photo down"
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise InferenceError(f"{source}: cannot read the image (not a JPEG/PNG/BMP file, or corrupt)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InferenceError(f"{path}: no such image file")
    return decode_image(path.read_bytes(), str(path))


def read_pose_file(path: str | Path, model_hw: tuple[int, int]) -> np.ndarray:
    """(18, 2) keypoints in the model's frame from a pose JSON file (see the module doc)."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise InferenceError(f"{path}: no such pose file") from None
    return parse_pose(text, model_hw, str(path))


def parse_pose(text: str | bytes, model_hw: tuple[int, int], source: str) -> np.ndarray:
    """(18, 2) keypoints in the model's frame from the text of a pose file; ``source`` names it."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InferenceError(f"{source}: not a JSON pose file ({exc})") from None
    if not isinstance(data, dict) or "keypoints" not in data:
        raise InferenceError(
            f"{source}: expected an object with 'keypoints' (18 [y, x] pairs) and optional 'size' [height, width]"
        )
    kp = data["keypoints"]
    if not isinstance(kp, list) or len(kp) != NUM_JOINTS or not all(isinstance(p, list) and len(p) == 2 for p in kp):
        raise InferenceError(
            f"{source}: 'keypoints' must hold {NUM_JOINTS} [y, x] pairs (OpenPose-18 order), got {str(kp)[:80]}"
        )
    try:
        yx = np.array(kp, dtype=np.float32)
    except (TypeError, ValueError):
        raise InferenceError(f"{source}: 'keypoints' must be numbers") from None
    bad = [i for i, point in enumerate(yx) if not np.isfinite(point).all()]
    if bad:
        raise InferenceError(
            f"{source}: 'keypoints' must be finite numbers, joints {bad} are not (NaN or infinity); "
            "-1 marks a missing joint"
        )
    size = data.get("size", list(model_hw))
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, (int, float)) and s > 0 for s in size)):
        raise InferenceError(f"{source}: 'size' must be [height, width] in pixels, got {size!r}")
    vis = visible(yx)
    if not vis.any():
        raise InferenceError(f"{source}: every joint is missing (-1): there is no pose to transfer to")
    if vis.sum() < MIN_POSE_JOINTS:
        raise InferenceError(
            f"{source}: only {int(vis.sum())} joints are given; a pose needs at least {MIN_POSE_JOINTS} (-1 = missing)"
        )
    if (yx[vis] > np.array(size, np.float32)).any():
        raise InferenceError(f"{source}: a keypoint lies outside the {size[0]}x{size[1]} frame given by 'size'")
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


def check_output_path(path: str | Path) -> Path:
    """``path`` if its name ends in .png, .jpg or .jpeg (the formats :meth:`PoseTransfer.save`
    writes), else an error: a PNG under another name misleads whoever opens it."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InferenceError(f"{path}: the output must be a .png, .jpg or .jpeg file name")
    return path


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[None]:
    """File descriptor 2 goes to a temporary file for the duration: MediaPipe's C++ (absl, TFLite)
    writes there directly, beyond Python's reach. What it wrote is replayed if the block fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                sink.seek(0)
                os.write(2, sink.read())


@dataclass(frozen=True)
class Transfer:
    """One pose transfer: what the model was given and what both stages made of it (one forward)."""

    condition: np.ndarray  # uint8 (H, W, 3): the condition person in the model's frame
    condition_keypoints: np.ndarray | None  # (18, 2) in that frame; None: given aligned, not estimated
    target_keypoints: np.ndarray  # (18, 2) float32 in the model's frame, -1 = missing
    g1: np.ndarray  # uint8 (H, W, 3): stage 1's coarse image
    pg2: np.ndarray | None  # uint8 (H, W, 3): G1 + G2's difference map; None for a stage-1-only model

    @property
    def output(self) -> np.ndarray:
        """The model's answer: the refined image, or G1's without G2 (what ``pg2 generate`` writes)."""
        return self.pg2 if self.pg2 is not None else self.g1


class PoseTransfer:
    """A registered PG² generator, ready to move a person into a new pose."""

    def __init__(self, model_uri: str, tracking_uri: str | None = None):
        import mlflow
        from mlflow.exceptions import MlflowException

        from pg2_pipeline.model_card import describe_model
        from pg2_pipeline.models.pg2 import load_pyfunc

        if tracking_uri:
            from pg2_pipeline.tracking import use_tracking_uri

            use_tracking_uri(tracking_uri)
        if not model_uri.startswith(("models:/", "runs:/")) and not Path(model_uri).exists():
            raise ModelNotFoundError(
                f"'{model_uri}' is not a model URI "
                "(expected models:/<name>@<alias>, models:/<name>/<version> or a model folder)"
            )
        try:
            with warnings.catch_warnings(record=True) as caught:  # the filters in force, recorded
                self.model = load_pyfunc(model_uri)  # sys.path left as it was
        except MlflowException as exc:
            raise ModelNotFoundError(
                f"cannot load {model_uri}: {exc.message} (tracking store {mlflow.get_tracking_uri()})"
            ) from None
        for w in caught:  # everything but the type-hint advice goes on as it came
            if _TYPE_HINT_ADVICE not in str(w.message):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        metadata = self.model.metadata.metadata or {}
        if "image_size" not in metadata:
            raise ModelNotFoundError(f"{model_uri} is not a pg2-pipeline generator (no image_size in its metadata)")
        self.model_uri = model_uri
        self.height, self.width = metadata["image_size"]
        # The PG² object itself (the MLflow model's own loader built it): its forward gives G1 and
        # the refined image together.
        self.pg2 = self.model.unwrap_python_model().pg2
        try:
            self.card = describe_model(model_uri, metadata)
        except MlflowException as exc:
            raise ModelNotFoundError(f"cannot read the registry entry of {model_uri}: {exc.message}") from None
        self._estimator = None

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def _keypoints(self, image: np.ndarray, source: str) -> np.ndarray:
        from pg2_pipeline.pose.blazepose import BlazePoseEstimator

        with native_stderr_captured():
            if self._estimator is None:
                self._estimator = BlazePoseEstimator()
            estimate = self._estimator.estimate(image)
        found = int(visible(estimate.yx).sum())
        if not estimate.person_found or found < MIN_POSE_JOINTS:
            raise NoPersonError(f"{source}: no person found (BlazePose detected {found} joints)")
        return estimate.yx

    def condition_with_keypoints(
        self, image: np.ndarray | str | Path, source: str = "condition image", keypoints: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The condition image in the model's frame (uint8 RGB (H, W, 3)) and its person's
        keypoints there. An image of the model's size is taken as an aligned crop, like the
        dataset images (keypoints: ``keypoints`` as given, or None); any other is cropped around
        its person, located by ``keypoints`` (in ``image``'s frame) when known, else BlazePose."""
        if not isinstance(image, np.ndarray):
            source, image = str(image), read_image(image)
        if image.shape[:2] == self.size:
            return image, keypoints
        return crop_to_frame(image, keypoints if keypoints is not None else self._keypoints(image, source), self.size)

    def condition_frame(self, image: np.ndarray | str | Path, source: str = "condition image") -> np.ndarray:
        """The condition image in the model's frame (uint8 RGB (H, W, 3))."""
        return self.condition_with_keypoints(image, source)[0]

    def target_pose(
        self,
        pose: str | Path | np.ndarray | None = None,
        pose_from: np.ndarray | str | Path | None = None,
        source: str = "pose image",
    ) -> np.ndarray:
        """(18, 2) target keypoints in the model's frame from a pose file, keypoints already in
        that frame (an array) or another photo (``source`` names an array photo in errors)."""
        if (pose is None) == (pose_from is None):
            raise InferenceError("give exactly one target pose: a pose file or a photo to take it from")
        if isinstance(pose, np.ndarray):
            if pose.shape != (NUM_JOINTS, 2):
                raise InferenceError(f"target keypoints must be ({NUM_JOINTS}, 2) (y, x), got {pose.shape}")
            return pose.astype(np.float32)
        if pose is not None:
            return read_pose_file(pose, self.size)
        source = str(pose_from) if not isinstance(pose_from, np.ndarray) else source
        image = pose_from if isinstance(pose_from, np.ndarray) else read_image(pose_from)
        yx = self._keypoints(image, source)
        if image.shape[:2] == self.size:
            return yx
        return crop_to_frame(image, yx, self.size)[1]

    def transfer(
        self,
        image: np.ndarray | str | Path,
        pose: str | Path | np.ndarray | None = None,
        pose_from: np.ndarray | str | Path | None = None,
        condition_keypoints: np.ndarray | None = None,
        sources: tuple[str, str] = ("condition image", "pose image"),
    ) -> Transfer:
        """The person of ``image`` moved to the target pose by both stages, in one forward (see
        :meth:`target_pose` for ``pose`` / ``pose_from``). ``condition_keypoints``: the person's
        keypoints in ``image`` when known (a dataset image), used instead of BlazePose. ``sources``
        name the two images in errors when they are given as arrays."""
        import torch

        from pg2_pipeline import imaging
        from pg2_pipeline.pose.maps import pose_maps, to_network

        condition, keypoints = self.condition_with_keypoints(image, sources[0], condition_keypoints)
        yx = self.target_pose(pose, pose_from, sources[1]).astype(np.float32)
        device = next(self.pg2.parameters()).device
        with torch.inference_mode():
            x = imaging.from_uint8(imaging.from_numpy_hwc(np.ascontiguousarray(condition)[None], device))
            p = to_network(pose_maps(torch.from_numpy(yx[None]).to(device), self.height, self.width))
            coarse, refined = self.pg2(x, p)  # (1, 3, H, W) each, [-1, 1]
        return Transfer(
            condition=condition,
            condition_keypoints=keypoints,
            target_keypoints=yx,
            g1=imaging.to_numpy_hwc(coarse)[0],
            pg2=imaging.to_numpy_hwc(refined)[0] if refined is not None else None,
        )

    def generate(self, image, pose=None, pose_from=None) -> np.ndarray:
        """The person of ``image`` in the target pose: uint8 RGB (H, W, 3)."""
        return self.transfer(image, pose, pose_from).output

    @staticmethod
    def save(image: np.ndarray, path: str | Path) -> Path:
        """Writes ``image`` as PNG or JPEG (by the name's suffix; other names are refused)."""
        path = check_output_path(path)
        if path.suffix.lower() == ".png":
            return fileio.write_png(path, image)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
        if not ok:
            raise InferenceError(f"{path}: could not encode the image as JPEG")
        return fileio.write_bytes(path, buf.tobytes())

    def close(self) -> None:
        if self._estimator is not None:
            self._estimator.close()
            self._estimator = None
