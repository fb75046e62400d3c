"""Body geometry from 18 keypoints: view, scale, head, and plausible stand-ins for missing joints.

Everything here works in image ``(x, y)`` floats (cv2's order); the pose itself arrives in the
project's ``(y, x)`` representation (:mod:`pg2_pipeline.skeleton`). Real joints are never
moved: estimates only fill the gaps that drawing needs (a torso without hips still needs a lower
edge), and limbs whose own joints are missing are left out by the renderer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pg2_pipeline.skeleton import JOINT

Point = tuple[float, float]  # (x, y)

NOSE, NECK = JOINT["nose"], JOINT["neck"]
R_SHO, R_ELB, R_WRI = JOINT["r_shoulder"], JOINT["r_elbow"], JOINT["r_wrist"]
L_SHO, L_ELB, L_WRI = JOINT["l_shoulder"], JOINT["l_elbow"], JOINT["l_wrist"]
R_HIP, R_KNE, R_ANK = JOINT["r_hip"], JOINT["r_knee"], JOINT["r_ankle"]
L_HIP, L_KNE, L_ANK = JOINT["l_hip"], JOINT["l_knee"], JOINT["l_ankle"]
R_EYE, L_EYE, R_EAR, L_EAR = JOINT["r_eye"], JOINT["l_eye"], JOINT["r_ear"], JOINT["l_ear"]

# A side view is one where the shoulders (or hips) overlap: |dx| below this share of the body
# scale. Frontal Market poses have |dx| ~ 0.45 s, true profiles ~ 0.05 s.
SIDE_THRESHOLD = 0.18


def points_of(yx: np.ndarray) -> list[Point | None]:
    """``(18, 2)`` (y, x) with -1 for missing -> list of (x, y) or None."""
    out: list[Point | None] = []
    for y, x in np.asarray(yx, dtype=np.float64).tolist():
        out.append((x, y) if (x >= 0 and y >= 0) else None)
    return out


def distance(a: Point, b: Point) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def midpoint(a: Point, b: Point) -> Point:
    return ((a[0] + b[0]) * 0.5, (a[1] + b[1]) * 0.5)


def offset(a: Point, v: Point, k: float = 1.0) -> Point:
    return (a[0] + k * v[0], a[1] + k * v[1])


def unit(v: Point, fallback: Point = (0.0, -1.0)) -> Point:
    n = math.hypot(*v)
    return (v[0] / n, v[1] / n) if n > 1e-6 else fallback


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


def body_scale(p: list[Point | None], default: float) -> float:
    """Length unit ``s`` ~ neck-to-hip distance, from whatever bones are visible.

    Foreshortening only ever shortens a projected bone, so each bone gives a lower bound of the
    trunk length (ratios of adult proportions); the trunk itself wins when it is seen.
    """
    estimates: list[float] = []
    ratios = ((R_SHO, L_SHO, 2.0), (R_SHO, R_ELB, 2.2), (L_SHO, L_ELB, 2.2), (R_ELB, R_WRI, 2.5),
              (L_ELB, L_WRI, 2.5), (R_HIP, R_KNE, 1.5), (L_HIP, L_KNE, 1.5), (R_KNE, R_ANK, 1.55),
              (L_KNE, L_ANK, 1.55), (NOSE, NECK, 2.4), (R_EAR, L_EAR, 3.6), (R_EYE, L_EYE, 6.5))  # fmt: skip
    for a, b, k in ratios:
        if p[a] and p[b]:
            estimates.append(distance(p[a], p[b]) * k)
    trunk = 0.0
    if p[NECK] and (p[R_HIP] or p[L_HIP]):
        hip = midpoint(p[R_HIP], p[L_HIP]) if (p[R_HIP] and p[L_HIP]) else (p[R_HIP] or p[L_HIP])
        trunk = distance(p[NECK], hip)
    if not estimates:
        return trunk or default
    guess = _median(sorted(estimates)[len(estimates) // 2 :])  # the upper half: least foreshortened
    return max(trunk, 0.8 * guess) if trunk else guess


def infer_view(yx: np.ndarray) -> str:
    """'front', 'back' or 'side' from the left/right order of shoulders (then hips, then eyes).

    In a frontal view the person's right side is on the image's left (smaller x).
    """
    p = points_of(yx)
    return _view(p, body_scale(p, 1.0))


def _view(p: list[Point | None], s: float) -> str:
    for right, left in ((R_SHO, L_SHO), (R_HIP, L_HIP)):
        if p[right] and p[left]:
            dx = p[left][0] - p[right][0]
            if abs(dx) < SIDE_THRESHOLD * s:
                return "side"
            return "front" if dx > 0 else "back"
    for right, left in ((R_EYE, L_EYE), (R_EAR, L_EAR)):
        if p[right] and p[left]:
            return "front" if p[left][0] > p[right][0] else "back"
    if p[NOSE] or p[R_EYE] or p[L_EYE]:
        return "front"
    if p[R_EAR] or p[L_EAR]:
        return "back"  # ears without a face: OpenPose's typical back-of-head detection
    return "front"


@dataclass(frozen=True)
class Body:
    """Joints (real or estimated) and derived geometry of one pose."""

    p: list[Point | None]  # real joints only
    q: list[Point | None]  # real joints plus estimated neck, shoulders and hips
    s: float  # body scale (neck to hip)
    up: Point  # unit vector from hips towards the head
    side: Point  # unit vector towards the person's left, in the image plane
    view: str  # front | back | side
    facing: int  # side views: +1 looking towards +x, -1 towards -x (0 otherwise)
    head_center: Point | None
    head_radius: float


def analyse(yx: np.ndarray, default_scale: float) -> Body:
    p = points_of(yx)
    s = body_scale(p, default_scale)
    view = _view(p, s)
    q = list(p)

    # Up: the trunk when it is seen, else perpendicular to the shoulder line, else the face.
    up: Point | None = None
    hips = [h for h in (p[R_HIP], p[L_HIP]) if h]
    if p[NECK] and hips:
        hip = midpoint(*hips) if len(hips) == 2 else hips[0]
        if distance(p[NECK], hip) > 0.3 * s:
            up = unit((p[NECK][0] - hip[0], p[NECK][1] - hip[1]))
    if up is None and p[R_SHO] and p[L_SHO] and distance(p[R_SHO], p[L_SHO]) > 0.3 * s:
        v = unit((p[L_SHO][0] - p[R_SHO][0], p[L_SHO][1] - p[R_SHO][1]))
        up = (v[1], -v[0])  # v rotated a quarter turn counter-clockwise (y points down)
        if up[1] > 0:  # back view: the shoulder line runs the other way
            up = (-up[0], -up[1])
    if up is None and p[NOSE] and p[NECK] and distance(p[NOSE], p[NECK]) > 0.1 * s:
        up = unit((p[NOSE][0] - p[NECK][0], p[NOSE][1] - p[NECK][1]))
    if up is None or up[1] > 0.2:  # people stand; a head below the hips is an annotation slip
        up = (0.0, -1.0)
    # Person's left in the image: image-right in a front view, image-left in a back view.
    perp = (-up[1], up[0])  # up rotated to image-right when up = (0, -1)
    side = perp if view != "back" else (-perp[0], -perp[1])

    facing = 0
    if view == "side":
        face = p[NOSE] or p[R_EYE] or p[L_EYE]
        ref = p[NECK] or p[R_EAR] or p[L_EAR] or p[R_SHO] or p[L_SHO]
        if face and ref and abs(face[0] - ref[0]) > 0.02 * s:
            facing = 1 if face[0] > ref[0] else -1
        else:
            facing = 1

    center, radius = _head(p, s, up)

    # Neck: between the shoulders, beside a lone shoulder, a trunk above the hips or under the
    # head — a torso drawn from a guess looks more like a person than a floating head or legs.
    half_width = 0.24 * s if view != "side" else 0.05 * s
    if q[NECK] is None:
        if q[R_SHO] and q[L_SHO]:
            q[NECK] = offset(midpoint(q[R_SHO], q[L_SHO]), up, 0.04 * s)
        elif q[R_SHO]:
            q[NECK] = offset(q[R_SHO], side, half_width)
        elif q[L_SHO]:
            q[NECK] = offset(q[L_SHO], side, -half_width)
        elif hips:
            q[NECK] = offset(midpoint(*hips) if len(hips) == 2 else hips[0], up, s)
        elif center:
            q[NECK] = offset(center, up, -1.25 * radius)
    for a, b, sign in ((R_SHO, L_SHO, -1.0), (L_SHO, R_SHO, 1.0)):
        if q[a] is None and q[NECK]:
            if q[b]:
                q[a] = (2 * q[NECK][0] - q[b][0], 2 * q[NECK][1] - q[b][1])
            else:
                q[a] = offset(offset(q[NECK], side, sign * half_width), up, -0.04 * s)
    # Hips: mirror a lone hip along the shoulder line, or hang them a trunk below the neck.
    if q[NECK]:
        sho_vec = (q[L_SHO][0] - q[R_SHO][0], q[L_SHO][1] - q[R_SHO][1]) if (q[R_SHO] and q[L_SHO]) else (0.0, 0.0)
        if q[R_HIP] is None and q[L_HIP]:
            q[R_HIP] = offset(q[L_HIP], sho_vec, -0.75)
        elif q[L_HIP] is None and q[R_HIP]:
            q[L_HIP] = offset(q[R_HIP], sho_vec, 0.75)
        elif q[R_HIP] is None and q[L_HIP] is None:
            centre = offset(q[NECK], up, -s)
            q[R_HIP] = offset(centre, sho_vec, -0.38)
            q[L_HIP] = offset(centre, sho_vec, 0.38)

    if center is None and q[NECK]:
        center = offset(q[NECK], up, 1.25 * radius)
    return Body(p=p, q=q, s=s, up=up, side=side, view=view, facing=facing, head_center=center, head_radius=radius)


def _head(p, s: float, up: Point) -> tuple[Point | None, float]:
    """Head ellipse centre and radius from the face keypoints, falling back on the body scale."""
    radii = [0.24 * s]
    if p[R_EAR] and p[L_EAR]:
        radii.append(0.6 * distance(p[R_EAR], p[L_EAR]))
    if p[R_EYE] and p[L_EYE]:
        radii.append(1.35 * distance(p[R_EYE], p[L_EYE]))
    if p[NOSE] and p[NECK]:
        radii.append(0.5 * distance(p[NOSE], p[NECK]))
    r = min(max(_median(radii), 0.19 * s), 0.28 * s)

    face = [p[i] for i in (NOSE, R_EYE, L_EYE, R_EAR, L_EAR) if p[i]]
    if face:
        cx = sum(f[0] for f in face) / len(face)
        cy = sum(f[1] for f in face) / len(face)
        # Eyes and ears sit at mid-head height; a lone nose sits a little below it.
        centre = (cx, cy)
        if p[NOSE] and len(face) == 1:
            centre = offset(centre, up, 0.25 * r)
        return centre, r
    return None, r
