"""BlazePose (MediaPipe Pose 0.10.21, fully offline) as an OpenPose-18 keypoint estimator.

BlazePose predicts 33 landmarks for the most prominent person in an image; the project speaks
OpenPose-18 (:mod:`pg2_pipeline.skeleton`). The mapping (BlazePose indices as in
``mediapipe.solutions.pose.PoseLandmark``; "right"/"left" are the person's own sides in both):

=========  ===========================  ============================================
OpenPose   name                         BlazePose source
=========  ===========================  ============================================
0          nose                         0  NOSE
1          neck                         midpoint of 11 LEFT_SHOULDER and 12 RIGHT_SHOULDER
                                        when both are kept; score = min of the two;
                                        otherwise missing (BlazePose has no neck)
2          r_shoulder                   12 RIGHT_SHOULDER
3          r_elbow                      14 RIGHT_ELBOW
4          r_wrist                      16 RIGHT_WRIST
5          l_shoulder                   11 LEFT_SHOULDER
6          l_elbow                      13 LEFT_ELBOW
7          l_wrist                      15 LEFT_WRIST
8          r_hip                        24 RIGHT_HIP
9          r_knee                       26 RIGHT_KNEE
10         r_ankle                      28 RIGHT_ANKLE
11         l_hip                        23 LEFT_HIP
12         l_knee                       25 LEFT_KNEE
13         l_ankle                      27 LEFT_ANKLE
14         r_eye                        5  RIGHT_EYE
15         l_eye                        2  LEFT_EYE
16         r_ear                        8  RIGHT_EAR
17         l_ear                        7  LEFT_EAR
=========  ===========================  ============================================

Unused BlazePose landmarks: inner/outer eye corners (1, 3, 4, 6), mouth (9, 10), hands
(17-22: pinky, index, thumb) and feet (29-32: heel, foot index).

A mapped landmark is **missing** (``MISSING`` coordinates, score 0) when

* its BlazePose ``visibility`` is below ``visibility_threshold`` (BlazePose extrapolates every
  landmark, even those outside the frame or hidden; visibility is its estimate that the joint is
  in view and unoccluded), or
* it falls outside the image: BlazePose happily places ankles below the bottom edge of a
  half-body photo. A landmark is kept when its continuous position lies inside the image extent
  (``0 <= x < W``, ``0 <= y < H``, pixel-edge convention); kept coordinates are then clipped
  into ``[0, W-1] x [0, H-1]`` so that :func:`keypoints.in_bounds` holds (a shift of at most
  half a pixel).

Score = BlazePose visibility (the ``presence`` field is always 0 in this mediapipe version).

**Coordinates.** MediaPipe returns positions normalised by the image size with the pixel-edge
convention (0 = left edge of pixel 0, 1 = right edge of the last pixel). The project uses pixel
indices (OpenPose: the centre of pixel ``i`` is ``i``), so ``x = x_norm * W - 0.5``.

**Small crops.** Market-1501 crops are 128x64. Before detection an image whose shorter side is
below ``upscale_min_side`` is upscaled with bicubic interpolation (aspect kept; each axis scaled
to a whole number of pixels) and optionally padded with black to a square canvas; landmarks are
mapped back to the original pixel grid exactly (:class:`CanvasTransform`). Measured on 2:1
windows of the square ``astronaut`` photo and its mirror (8 windows each), shrunk to 128x64,
against the keypoints found on the full square photo (median error of nose, eyes, ears and
shoulders, % of the crop height, photo / mirror): no upscaling 1.34 / 1.30 %, bicubic upscaling
to 256: 1.00 / 1.23 %, upscaling + square padding 0.54 / 1.04 %, padding alone 0.82 / 1.23 %;
every variant found all 7 joints. On a second photo (``grace_hopper``, shoulders cut by the
window) upscaling and padding were neutral to slightly worse. The effects are small and within
the noise of so few images, and no realistic full-body crops were available offline: the
defaults (bicubic upscaling to 256, no padding) are the conservative choice, not a proven
optimum; re-measure on Market crops. Runtime barely changes (~28 ms CPU per image; upscaling
adds ~2 ms) because MediaPipe resamples its 224x224 detector and 256x256 landmark inputs from
whatever it gets. MediaPipe's log line "Using NORM_RECT without IMAGE_DIMENSIONS is only
supported for the square ROI" appears for non-square inputs; a square canvas (which avoids it)
moved the median error by under half a percent of the crop height in the measurement above.

**Offline.** Only ``model_complexity=1`` (``pose_landmark_full.tflite``) ships in the wheel;
0 (lite) and 2 (heavy) make MediaPipe download a model at construction, so they are refused.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

import cv2
import numpy as np

from pg2_pipeline.skeleton import JOINT, MISSING, NUM_JOINTS

# OpenPose-18 joint name -> BlazePose landmark index (the neck is derived, see the table above).
BLAZEPOSE_SOURCE: Final[dict[str, int]] = {
    "nose": 0,
    "r_shoulder": 12,
    "r_elbow": 14,
    "r_wrist": 16,
    "l_shoulder": 11,
    "l_elbow": 13,
    "l_wrist": 15,
    "r_hip": 24,
    "r_knee": 26,
    "r_ankle": 28,
    "l_hip": 23,
    "l_knee": 25,
    "l_ankle": 27,
    "r_eye": 5,
    "l_eye": 2,
    "r_ear": 8,
    "l_ear": 7,
}
NUM_BLAZEPOSE_LANDMARKS: Final = 33

_TARGETS = np.array([JOINT[name] for name in BLAZEPOSE_SOURCE])  # OpenPose indices
_SOURCES = np.array(list(BLAZEPOSE_SOURCE.values()))  # BlazePose indices, same order
_NECK = JOINT["neck"]
_R_SHOULDER, _L_SHOULDER = JOINT["r_shoulder"], JOINT["l_shoulder"]

OFFLINE_MODEL_COMPLEXITY: Final = 1


@dataclass(frozen=True)
class BlazePoseOptions:
    """Settings of :class:`BlazePoseEstimator`; every field changes the extracted keypoints."""

    # 1 = pose_landmark_full.tflite, the only model bundled with the wheel (0/2 download).
    model_complexity: int = OFFLINE_MODEL_COMPLEXITY
    # Score threshold of BlazePose's person detector; below it the image has no person.
    min_detection_confidence: float = 0.5
    # A landmark whose visibility is below this is missing (0.5 = mediapipe's drawing default).
    visibility_threshold: float = 0.5
    # Upscale (bicubic, aspect kept) so that the shorter side is at least this; 0 disables.
    upscale_min_side: int = 256
    # Pad the (upscaled) image with black to a square canvas before detection.
    pad_to_square: bool = False
    # Also return BlazePose's person segmentation mask (same network call, small extra cost).
    segmentation: bool = False

    def __post_init__(self) -> None:
        if self.model_complexity != OFFLINE_MODEL_COMPLEXITY:
            raise ValueError(
                f"model_complexity={self.model_complexity!r} is not available offline: the "
                f"mediapipe wheel bundles only pose_landmark_full.tflite "
                f"(model_complexity={OFFLINE_MODEL_COMPLEXITY}); 0 (lite) and 2 (heavy) make "
                f"mediapipe download a model from the internet"
            )
        for name in ("min_detection_confidence", "visibility_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
        if not isinstance(self.upscale_min_side, int) or self.upscale_min_side < 0:
            raise ValueError(f"upscale_min_side must be an int >= 0 (0 = no upscaling), got {self.upscale_min_side!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PoseEstimate:
    """One image's pose in the project's representation (see :mod:`keypoints`)."""

    yx: np.ndarray  # (18, 2) float32, pixel indices of the original image, -1 = missing
    score: np.ndarray  # (18,) float32, BlazePose visibility, 0 for missing joints
    person_found: bool
    # (H, W) float32 in [0, 1] at the original image size when segmentation was requested
    # (all zeros when no person was found), else None.
    segmentation: np.ndarray | None = None

    @classmethod
    def missing(cls, segmentation: np.ndarray | None = None) -> PoseEstimate:
        return cls(
            yx=np.full((NUM_JOINTS, 2), MISSING, dtype=np.float32),
            score=np.zeros(NUM_JOINTS, dtype=np.float32),
            person_found=False,
            segmentation=segmentation,
        )


@dataclass(frozen=True)
class CanvasTransform:
    """How an image is placed on the canvas that BlazePose sees: each axis scaled to a whole
    number of pixels, then offset by the padding. Maps results back to the original grid."""

    height: int  # original image
    width: int
    scaled_height: int  # image after upscaling
    scaled_width: int
    canvas_height: int  # after padding
    canvas_width: int
    pad_top: int
    pad_left: int

    @classmethod
    def plan(cls, height: int, width: int, *, upscale_min_side: int, pad_to_square: bool) -> CanvasTransform:
        scale = max(1.0, upscale_min_side / min(height, width)) if upscale_min_side else 1.0
        sh, sw = round(height * scale), round(width * scale)
        ch, cw = (max(sh, sw),) * 2 if pad_to_square else (sh, sw)
        return cls(height, width, sh, sw, ch, cw, (ch - sh) // 2, (cw - sw) // 2)

    @property
    def is_identity(self) -> bool:
        return (self.canvas_height, self.canvas_width) == (self.height, self.width)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """The canvas (uint8 RGB) for an image of the planned size."""
        if self.is_identity:
            return rgb
        image = rgb
        if (self.scaled_height, self.scaled_width) != (self.height, self.width):
            image = cv2.resize(rgb, (self.scaled_width, self.scaled_height), interpolation=cv2.INTER_CUBIC)
        if (self.canvas_height, self.canvas_width) == (self.scaled_height, self.scaled_width):
            return image
        canvas = np.zeros((self.canvas_height, self.canvas_width, 3), dtype=np.uint8)
        top, left = self.pad_top, self.pad_left
        canvas[top : top + self.scaled_height, left : left + self.scaled_width] = image
        return canvas

    def normalized_to_original(self, xy_norm: np.ndarray) -> np.ndarray:
        """MediaPipe's normalised ``(N, 2)`` (x, y) on the canvas -> ``(N, 2)`` (y, x) pixel
        indices of the original image (unclipped, may lie outside it).

        Both cv2.resize and MediaPipe put pixel centres at ``i + 0.5`` in continuous
        coordinates, so the scaling is exact in the continuous frame; -0.5 converts to indices.
        """
        xy_norm = np.asarray(xy_norm, dtype=np.float64)
        x = (xy_norm[:, 0] * self.canvas_width - self.pad_left) * (self.width / self.scaled_width) - 0.5
        y = (xy_norm[:, 1] * self.canvas_height - self.pad_top) * (self.height / self.scaled_height) - 0.5
        return np.stack([y, x], axis=-1)

    def mask_to_original(self, mask: np.ndarray) -> np.ndarray:
        """A canvas-sized mask -> float32 ``(H, W)`` at the original size."""
        mask = np.asarray(mask, dtype=np.float32)
        if mask.shape != (self.canvas_height, self.canvas_width):
            raise ValueError(
                f"segmentation mask has shape {mask.shape}, expected the canvas size "
                f"{(self.canvas_height, self.canvas_width)}"
            )
        mask = mask[self.pad_top : self.pad_top + self.scaled_height, self.pad_left : self.pad_left + self.scaled_width]
        if mask.shape != (self.height, self.width):
            mask = cv2.resize(mask, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(np.clip(mask, 0.0, 1.0))


def blazepose_to_openpose(
    yx33: np.ndarray, visibility: np.ndarray, *, height: int, width: int, visibility_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """33 BlazePose landmarks (``(33, 2)`` (y, x) pixel indices of a ``height x width`` image
    and ``(33,)`` visibilities) -> OpenPose-18 ``yx (18, 2)`` and ``score (18,)`` following the
    module's table and missing-joint rules."""
    yx33 = np.asarray(yx33, dtype=np.float64)
    visibility = np.asarray(visibility, dtype=np.float64)
    if yx33.shape != (NUM_BLAZEPOSE_LANDMARKS, 2) or visibility.shape != (NUM_BLAZEPOSE_LANDMARKS,):
        raise ValueError(f"expected (33, 2) landmarks and (33,) visibilities, got {yx33.shape} and {visibility.shape}")
    src = yx33[_SOURCES]
    vis = visibility[_SOURCES]
    inside = (src[:, 0] >= -0.5) & (src[:, 0] < height - 0.5) & (src[:, 1] >= -0.5) & (src[:, 1] < width - 0.5)
    keep = inside & (vis >= visibility_threshold)

    yx = np.full((NUM_JOINTS, 2), MISSING, dtype=np.float32)
    score = np.zeros(NUM_JOINTS, dtype=np.float32)
    clipped = np.stack([np.clip(src[:, 0], 0, height - 1), np.clip(src[:, 1], 0, width - 1)], axis=-1)
    yx[_TARGETS[keep]] = clipped[keep]
    score[_TARGETS[keep]] = vis[keep]

    if score[_R_SHOULDER] > 0 and score[_L_SHOULDER] > 0:
        yx[_NECK] = (yx[_R_SHOULDER] + yx[_L_SHOULDER]) / 2
        score[_NECK] = min(score[_R_SHOULDER], score[_L_SHOULDER])
    return yx, score


def check_rgb(rgb: Any) -> np.ndarray:
    """The image as a C-contiguous uint8 ``(H, W, 3)`` array, or a clear error."""
    if not isinstance(rgb, np.ndarray):
        raise TypeError(f"expected an RGB image as a numpy uint8 array of shape (H, W, 3), got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise TypeError(
            f"expected an RGB image of dtype uint8 (values 0-255), got dtype {rgb.dtype}; "
            f"convert floats with (img * 255).round().astype(np.uint8)"
        )
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        hint = " (drop the alpha channel)" if rgb.ndim == 3 and rgb.shape[2] == 4 else ""
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {rgb.shape}{hint}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"expected a non-empty RGB image, got shape {rgb.shape}")
    return np.ascontiguousarray(rgb)


class BlazePoseEstimator:
    """One MediaPipe Pose graph in static-image mode; not thread-safe, one per process.

    >>> with BlazePoseEstimator(BlazePoseOptions(segmentation=True)) as estimator:
    ...     pose = estimator.estimate(rgb)  # RGB, not OpenCV's BGR
    """

    def __init__(self, options: BlazePoseOptions | None = None) -> None:
        self.options = options or BlazePoseOptions()
        from mediapipe.python.solutions.pose import Pose  # heavy import, only where needed

        self._pose = Pose(
            static_image_mode=True,
            model_complexity=self.options.model_complexity,
            enable_segmentation=self.options.segmentation,
            min_detection_confidence=self.options.min_detection_confidence,
        )

    def __enter__(self) -> BlazePoseEstimator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Releases the MediaPipe graph; safe to call twice."""
        if self._pose is not None:
            self._pose.close()
            self._pose = None

    def estimate(self, rgb: np.ndarray) -> PoseEstimate:
        """The pose of the most prominent person in an RGB uint8 ``(H, W, 3)`` image; an image
        without a person gives an all-missing pose with ``person_found=False``."""
        if self._pose is None:
            raise RuntimeError("BlazePoseEstimator.estimate() called after close()")
        rgb = check_rgb(rgb)
        height, width = rgb.shape[:2]
        opts = self.options
        transform = CanvasTransform.plan(
            height, width, upscale_min_side=opts.upscale_min_side, pad_to_square=opts.pad_to_square
        )
        result = self._pose.process(transform.apply(rgb))

        segmentation = None
        if opts.segmentation:
            if result.segmentation_mask is None:
                segmentation = np.zeros((height, width), dtype=np.float32)
            else:
                segmentation = transform.mask_to_original(result.segmentation_mask)
        if result.pose_landmarks is None:
            return PoseEstimate.missing(segmentation)

        landmarks = result.pose_landmarks.landmark
        xy_norm = np.array([(lm.x, lm.y) for lm in landmarks], dtype=np.float64)
        visibility = np.array([lm.visibility for lm in landmarks], dtype=np.float64)
        yx, score = blazepose_to_openpose(
            transform.normalized_to_original(xy_norm),
            visibility,
            height=height,
            width=width,
            visibility_threshold=opts.visibility_threshold,
        )
        return PoseEstimate(yx=yx, score=score, person_found=True, segmentation=segmentation)


# ------------------------------------------------------------------------- batches, worker processes

POSE_VECTOR = NUM_JOINTS * 2 + 1  # one image's pose as a flat row: (y, x) of 18 joints, then person_found
_WORKER_ESTIMATOR: BlazePoseEstimator | None = None  # the estimator of a worker process


def estimate_batch(images_hwc: np.ndarray, estimator: BlazePoseEstimator | None = None) -> np.ndarray:
    """(B, POSE_VECTOR) float32 poses of uint8 (B, H, W, 3) RGB images, one image at a time;
    ``estimator`` defaults to this worker process's (:func:`init_worker`)."""
    estimator = estimator or _WORKER_ESTIMATOR
    if estimator is None:
        raise RuntimeError("estimate_batch without an estimator: call init_worker in this process first")
    out = np.empty((len(images_hwc), POSE_VECTOR), np.float32)
    for i, image in enumerate(images_hwc):
        pose = estimator.estimate(image)
        out[i, :-1] = pose.yx.reshape(-1)
        out[i, -1] = float(pose.person_found)
    return out


def init_worker(options: dict[str, Any]) -> None:
    """A worker process's initializer: one estimator for its life, one OpenCV thread (the
    upscale's resize), so that N workers use N cores. Importing this module imports no torch."""
    global _WORKER_ESTIMATOR
    cv2.setNumThreads(1)
    _WORKER_ESTIMATOR = BlazePoseEstimator(BlazePoseOptions(**options))
