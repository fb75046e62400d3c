"""Draws one person in an exact pose with cv2 primitives.

Two buffers are painted together: the RGB ``canvas`` gets flat, anti-aliased colours, and a
one-channel ``shade`` map (128 = unlit) gets a darker full shape plus a lighter one shifted
towards the light. Blurring the shade map and multiplying it in turns those two tones into soft,
rounded shading for the price of one extra fill per shape — the render stays under a millisecond
at 128×64, where per-pixel shading in numpy would not.

Limbs are tapered capsules between the exact keypoint coordinates, so every visible joint of a
drawn limb is covered by the body. Drawing order follows depth: far limbs, legs, torso, near
limbs, head.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from pg2_pipeline.data.twin.appearance import Appearance, Color, pattern_tile
from pg2_pipeline.data.twin.body import (
    L_ANK,
    L_ELB,
    L_EYE,
    L_HIP,
    L_KNE,
    L_SHO,
    L_WRI,
    NECK,
    NOSE,
    R_ANK,
    R_ELB,
    R_EYE,
    R_HIP,
    R_KNE,
    R_SHO,
    R_WRI,
    Body,
    Point,
    distance,
    midpoint,
    offset,
    unit,
)

SHIFT = 3  # cv2 fixed-point bits: sub-pixel placement of every shape
_F = 1 << SHIFT
AA = cv2.LINE_AA
DARK, LIGHT, SHADOW = 104, 150, 96  # shade-map tones (128 = x1)
LIGHT_DIR = unit((-0.45, -0.9))  # light from the upper left


def _fx(p: Point) -> tuple[int, int]:
    return (int(round(p[0] * _F)), int(round(p[1] * _F)))


def _pts(points: list[Point]) -> np.ndarray:
    return np.array([(round(x * _F), round(y * _F)) for x, y in points], dtype=np.int32)


def _scaled(color: Color, k: float) -> Color:
    return (min(255, int(color[0] * k)), min(255, int(color[1] * k)), min(255, int(color[2] * k)))


def _normal(a: Point, b: Point) -> Point:
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = math.hypot(dx, dy)
    return (-dy / length, dx / length) if length > 1e-6 else (1.0, 0.0)


def fill_capsule(
    img: np.ndarray, a: Point, b: Point, ra: float, rb: float, color, line: int, n: Point | None = None
) -> None:
    """Filled tapered capsule (a quad between two end circles) in fixed-point coordinates."""
    nx, ny = n or _normal(a, b)
    ax, ay, bx, by = a[0] * _F, a[1] * _F, b[0] * _F, b[1] * _F
    fa, fb = ra * _F, rb * _F
    quad = np.array(
        [
            (ax + nx * fa, ay + ny * fa),
            (bx + nx * fb, by + ny * fb),
            (bx - nx * fb, by - ny * fb),
            (ax - nx * fa, ay - ny * fa),
        ]
    ).astype(np.int32)
    cv2.fillConvexPoly(img, quad, color, line, SHIFT)
    cv2.circle(img, (int(ax), int(ay)), max(1, int(fa)), color, -1, line, SHIFT)
    cv2.circle(img, (int(bx), int(by)), max(1, int(fb)), color, -1, line, SHIFT)


@functools.lru_cache(maxsize=64)
def _solid(h: int, w: int, color: Color) -> np.ndarray:
    image = np.full((h, w, 3), color, np.uint8)
    image.setflags(write=False)
    return image


class Painter:
    """Paints shapes into the canvas and the shade map; optionally into a pattern mask."""

    def __init__(self, canvas: np.ndarray, shade: np.ndarray, mask: np.ndarray):
        self.canvas, self.shade, self.mask = canvas, shade, mask
        self.masking = False

    def poly(self, points: list[Point], color: Color, tone: bool = True) -> None:
        pts = _pts(points)
        cv2.fillPoly(self.canvas, [pts], color, AA, SHIFT)
        if self.masking:
            cv2.fillPoly(self.mask, [pts], 255, cv2.LINE_8, SHIFT)
        if tone:
            cv2.fillPoly(self.shade, [pts], DARK, cv2.LINE_8, SHIFT)
            cx = sum(p[0] for p in points) / len(points)
            cy = sum(p[1] for p in points) / len(points)
            size = max(abs(p[0] - cx) + abs(p[1] - cy) for p in points)
            ox, oy = LIGHT_DIR[0] * 0.18 * size, LIGHT_DIR[1] * 0.18 * size
            lit = [(cx + 0.72 * (x - cx) + ox, cy + 0.72 * (y - cy) + oy) for x, y in points]
            cv2.fillPoly(self.shade, [_pts(lit)], LIGHT, cv2.LINE_8, SHIFT)

    def capsule(self, a: Point, b: Point, ra: float, rb: float, color: Color, tone: bool = True) -> None:
        """Tapered limb from ``a`` (radius ``ra``) to ``b`` (radius ``rb``), round at both ends."""
        nx, ny = _normal(a, b)
        fill_capsule(self.canvas, a, b, ra, rb, color, AA, (nx, ny))
        if self.masking:
            fill_capsule(self.mask, a, b, ra, rb, 255, cv2.LINE_8, (nx, ny))
        if tone:
            # The shade map is blurred afterwards, so round-capped thick lines (one call each)
            # stand in for the tapered outline there.
            r = 0.5 * (ra + rb)
            cv2.line(self.shade, _fx(a), _fx(b), DARK, max(1, int(2 * r + 0.5)), cv2.LINE_8, SHIFT)
            k = 0.4 * r if nx * LIGHT_DIR[0] + ny * LIGHT_DIR[1] >= 0 else -0.4 * r
            la, lb = (a[0] + k * nx, a[1] + k * ny), (b[0] + k * nx, b[1] + k * ny)
            cv2.line(self.shade, _fx(la), _fx(lb), LIGHT, max(1, int(r + 0.5)), cv2.LINE_8, SHIFT)

    def ellipse(self, c: Point, rx: float, ry: float, angle: float, color: Color, tone: bool = True) -> None:
        axes = (max(1, int(rx * _F)), max(1, int(ry * _F)))
        cv2.ellipse(self.canvas, _fx(c), axes, angle, 0, 360, color, -1, AA, SHIFT)
        if tone:
            cv2.ellipse(self.shade, _fx(c), axes, angle, 0, 360, DARK, -1, cv2.LINE_8, SHIFT)
            lc = (c[0] + LIGHT_DIR[0] * 0.3 * rx, c[1] + LIGHT_DIR[1] * 0.3 * ry)
            lit_axes = (max(1, int(rx * 0.6 * _F)), max(1, int(ry * 0.6 * _F)))
            cv2.ellipse(self.shade, _fx(lc), lit_axes, angle, 0, 360, LIGHT, -1, cv2.LINE_8, SHIFT)

    def line(self, a: Point, b: Point, color: Color, width: float) -> None:
        cv2.line(self.canvas, _fx(a), _fx(b), color, max(1, int(round(width))), AA, SHIFT)

    def apply_pattern(self, tile: np.ndarray | None, anchor: Point, color: Color) -> None:
        """Second colour of the top wherever the mask and the pattern (anchored at ``anchor``)
        meet; clears the mask."""
        if tile is not None:
            h, w = self.mask.shape
            size = tile.shape[0]
            oy = int(min(max(size // 2 - anchor[1], 0), size - h))
            ox = int(min(max(size // 2 - anchor[0], 0), size - w))
            hit = cv2.bitwise_and(self.mask, tile[oy : oy + h, ox : ox + w])
            cv2.copyTo(_solid(h, w, color), hit, self.canvas)  # in place; ~30x numpy's masked set
        self.mask.fill(0)
        self.masking = False


def draw_person(paint: Painter, body: Body, app: Appearance, seed: int, key: str, detail: bool) -> None:
    """Paints the person of ``body`` dressed as ``app``. ``detail``: the image is large enough
    for facial features (DeepFashion)."""
    # Stripe width follows the body scale in coarse steps, so one identity needs few tiles.
    period = max(3, int(round(app.pattern_period * 1.25 ** round(math.log(max(body.s, 1.0), 1.25)))))
    tile = pattern_tile(app, seed, key, 2 * max(paint.mask.shape), period)
    anchor = body.q[NECK] or body.head_center or (paint.mask.shape[1] / 2, paint.mask.shape[0] / 2)

    _ground_shadow(paint, body)
    order = _limb_order(body)
    if body.view == "side" and app.carry == "backpack":
        _backpack_side(paint, body, app)
    for side in order[:1] if body.view == "side" else ():
        _arm(paint, body, app, side, tile, anchor)
    if app.hair_length > 0 and body.view != "back":  # long hair behind the shoulders
        _long_hair(paint, body, app)
    for side in order:
        _leg(paint, body, app, side)
    if app.bottom_kind in ("skirt", "dress"):
        _skirt(paint, body, app)
    torso = _torso(paint, body, app, tile, anchor)
    if torso and body.view == "front":
        _chest_print(paint, body, app)
    if torso and app.carry == "backpack" and body.view in ("front", "back"):
        (_backpack_back if body.view == "back" else _backpack_straps)(paint, body, app)
    if app.hair_length > 0 and body.view == "back":  # long hair over the back
        _long_hair(paint, body, app)
    if torso and app.carry == "bag":
        _bag(paint, body, app)
    for side in order[1:] if body.view == "side" else order:
        _arm(paint, body, app, side, tile, anchor)
    _head(paint, body, app, detail)


def _limb_order(body: Body) -> tuple[int, int]:
    """Sides to draw, far one first (-1 right, +1 left). A person looking towards +x shows the
    camera the right side (facing × up points at the camera), so the left one is far."""
    if body.view == "side":
        return (1, -1) if body.facing > 0 else (-1, 1)
    return (-1, 1)


def _ground_shadow(paint: Painter, body: Body) -> None:
    feet = [f for f in (body.p[R_ANK], body.p[L_ANK]) if f]
    if not feet:
        return
    cx = sum(f[0] for f in feet) / len(feet)
    cy = max(f[1] for f in feet) + 0.05 * body.s
    axes = (max(1, int(0.42 * body.s * _F)), max(1, int(0.07 * body.s * _F)))
    cv2.ellipse(paint.shade, _fx((cx, cy)), axes, 0, 0, 360, SHADOW, -1, cv2.LINE_8, SHIFT)


def _leg(paint: Painter, body: Body, app: Appearance, side: int) -> None:
    hip, knee, ankle = (
        (body.q[L_HIP], body.p[L_KNE], body.p[L_ANK]) if side > 0 else (body.q[R_HIP], body.p[R_KNE], body.p[R_ANK])
    )
    if hip is None:
        return
    # A joint the frame cut off is missing too (close-ups end at the thighs): continue the leg
    # out of the picture rather than end the body at the hips.
    bottom = paint.mask.shape[0]
    down = (-body.up[0], -body.up[1])
    if knee is None and ankle is None:
        if hip[1] + 0.6 * body.s < bottom:
            return
        knee = offset(hip, down, 0.7 * body.s)
    elif ankle is None and knee is not None and knee[1] + 0.6 * body.s > bottom:
        ankle = offset(knee, down, 0.7 * body.s)
    s, b = body.s, app.build
    r_hip, r_knee, r_ankle = 0.13 * s * b, 0.092 * s * b, 0.062 * s * b
    kind = app.bottom_kind
    trousers = kind == "trousers"
    skin = app.skin
    if knee is None:  # straight leg from the hip to the ankle
        paint.capsule(hip, ankle, r_hip, r_ankle * (1.15 if trousers else 1.0), app.bottom if trousers else skin)
    else:
        thigh_color = app.bottom if kind in ("trousers", "shorts") else skin
        paint.capsule(hip, knee, r_hip, r_knee * (1.1 if trousers else 1.0), thigh_color)
        if kind == "shorts":  # hem halfway down the thigh, skin below
            paint.capsule(_lerp(hip, knee, 0.5), knee, r_knee * 1.05, r_knee, skin)
        if ankle is not None:
            paint.capsule(
                knee,
                ankle,
                r_knee * (1.1 if trousers else 1.0),
                r_ankle * (1.15 if trousers else 1.0),
                app.bottom if trousers else skin,
            )
    if ankle is not None:
        foot_dir = body.facing * 0.09 * s
        c = (ankle[0] + foot_dir, ankle[1] + 0.035 * s)
        rx = (0.12 if body.view == "side" else 0.085) * s
        paint.ellipse(c, rx, 0.05 * s, 0.0, app.shoes)


def _lerp(a: Point, b: Point, t: float) -> Point:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _frame(body: Body) -> tuple[Point, Point, Point, Point, Point] | None:
    """Outer corners of the trunk: right shoulder, left shoulder, left hip, right hip, and the
    unit vector from the right towards the left side. None without neck or shoulders."""
    q, s = body.q, body.s
    if not (q[R_SHO] and q[L_SHO] and q[R_HIP] and q[L_HIP]):
        return None
    sho_vec = (q[L_SHO][0] - q[R_SHO][0], q[L_SHO][1] - q[R_SHO][1])
    across = unit(sho_vec, body.side) if math.hypot(*sho_vec) > 0.1 * s else body.side
    hip_vec = (q[L_HIP][0] - q[R_HIP][0], q[L_HIP][1] - q[R_HIP][1])
    hip_across = unit(hip_vec, across) if math.hypot(*hip_vec) > 0.1 * s else across
    if hip_across[0] * across[0] + hip_across[1] * across[1] < 0:  # twisted annotation
        hip_across = across
    sho_mid, hip_mid = midpoint(q[R_SHO], q[L_SHO]), midpoint(q[R_HIP], q[L_HIP])
    sho_half = max(0.5 * math.hypot(*sho_vec) + 0.09 * s, 0.22 * s)
    hip_half = max(0.5 * math.hypot(*hip_vec) + 0.1 * s, 0.2 * s)
    return (
        offset(sho_mid, across, -sho_half),
        offset(sho_mid, across, sho_half),
        offset(hip_mid, hip_across, hip_half),
        offset(hip_mid, hip_across, -hip_half),
        across,
    )


def _torso(paint: Painter, body: Body, app: Appearance, tile, anchor: Point) -> bool:
    frame = _frame(body)
    if frame is None:
        return False
    rs, ls, lh, rh, across = frame
    s, up = body.s, body.up
    down = (-up[0], -up[1])
    # Slight waist: the trunk narrows a little between chest and hips.
    lw = offset(_lerp(ls, lh, 0.62), across, -0.03 * s)
    rw = offset(_lerp(rs, rh, 0.62), across, 0.03 * s)
    # Shoulders slope up to the collar instead of ending in a flat box top.
    neck = body.q[NECK] or midpoint(rs, ls)
    # OpenPose's neck sits on the shoulder line, below the collar: raise the collar a little.
    rn = offset(offset(neck, across, -0.1 * s), up, 0.09 * s)
    ln = offset(offset(neck, across, 0.1 * s), up, 0.09 * s)
    rs, ls = offset(rs, up, 0.02 * s), offset(ls, up, 0.02 * s)
    paint.masking = True
    paint.poly([rs, rn, ln, ls, lw, lh, rh, rw], app.top)
    paint.apply_pattern(tile, anchor, app.top2)
    if app.bottom_kind != "dress":
        # Trousers / skirt waistband sits above the hip joints; the crotch below them.
        hm = midpoint(lh, rh)
        pelvis = [
            offset(rh, up, 0.13 * s),
            offset(lh, up, 0.13 * s),
            offset(lh, down, 0.08 * s),
            offset(hm, down, 0.14 * s),
            offset(rh, down, 0.08 * s),
        ]
        paint.poly(pelvis, app.bottom)
    return True


def _skirt(paint: Painter, body: Body, app: Appearance) -> None:
    frame = _frame(body)
    if frame is None:
        return
    _, _, lh, rh, across = frame
    s, q, p = body.s, body.q, body.p
    down = (-body.up[0], -body.up[1])
    length = (0.62 if app.bottom_kind == "dress" else 0.5) * s
    hems = []
    for hip, knee, corner, sign in ((q[R_HIP], p[R_KNE], rh, -1.0), (q[L_HIP], p[L_KNE], lh, 1.0)):
        d = unit((knee[0] - hip[0], knee[1] - hip[1]), down) if (knee and hip) else down
        hems.append(offset(offset(corner, d, length), across, sign * 0.1 * s))
    top = [offset(rh, body.up, 0.13 * s), offset(lh, body.up, 0.13 * s)]
    paint.poly([top[0], top[1], hems[1], hems[0]], app.bottom)


def _arm(paint: Painter, body: Body, app: Appearance, side: int, tile, anchor: Point) -> None:
    sho, elb, wri = (
        (body.q[L_SHO], body.p[L_ELB], body.p[L_WRI]) if side > 0 else (body.q[R_SHO], body.p[R_ELB], body.p[R_WRI])
    )
    if sho is None or (elb is None and wri is None):
        return
    s, b = body.s, app.build
    r_sho, r_elb, r_wri = 0.12 * s * b, 0.092 * s * b, 0.066 * s * b
    long_sleeve = app.sleeves == "long"
    sleeve_color = app.top
    skin = app.skin
    segments = [(sho, elb, r_sho, r_elb), (elb, wri, r_elb, r_wri)] if elb else [(sho, wri, r_sho, r_wri)]
    segments = [seg for seg in segments if seg[0] and seg[1]]
    for a, c, ra, rc in segments:
        paint.capsule(a, c, ra, rc, sleeve_color if long_sleeve else skin)
    if not long_sleeve:
        a, c, ra, rc = segments[0]
        if app.sleeves == "short":
            paint.capsule(a, _lerp(a, c, 0.45), ra * 1.12, ra * 1.05, sleeve_color)
    # Pattern on the sleeve: repaint the sleeve into the mask only.
    if tile is not None:
        paint.masking = True
        m = paint.mask
        if long_sleeve:
            for a, c, ra, rc in segments:
                fill_capsule(m, a, c, ra, rc, 255, cv2.LINE_8)
        elif app.sleeves == "short":
            a, c, ra, _ = segments[0]
            e = _lerp(a, c, 0.45)
            fill_capsule(m, a, e, ra * 1.12, ra * 1.05, 255, cv2.LINE_8)
        paint.apply_pattern(tile, anchor, app.top2)
    if wri is not None:
        prev = elb or sho
        d = unit((wri[0] - prev[0], wri[1] - prev[1]), (0.0, 1.0))
        paint.ellipse(offset(wri, d, 0.05 * s), 0.06 * s, 0.068 * s, 0.0, skin)


def _chest_print(paint: Painter, body: Body, app: Appearance) -> None:
    q, s = body.q, body.s
    hip_mid = midpoint(q[R_HIP], q[L_HIP])
    c = _lerp(q[NECK], hip_mid, 0.36)
    r = 0.12 * s
    color = app.print_color
    if app.print_shape == "circle":
        paint.ellipse(c, r, r, 0.0, color)
    elif app.print_shape == "star":
        star = [
            offset(c, (math.sin(k * math.pi / 5), -math.cos(k * math.pi / 5)), r * (1.0 if k % 2 == 0 else 0.45))
            for k in range(10)
        ]
        paint.poly(star, color)
    elif app.print_shape == "badge":  # small logo on the person's left chest
        bc = offset(offset(c, body.side, 0.13 * s), body.up, 0.05 * s)
        paint.poly(
            [
                offset(bc, (-1, -1), 0.05 * s),
                offset(bc, (1, -1), 0.05 * s),
                offset(bc, (1, 1), 0.05 * s),
                offset(bc, (-1, 1), 0.05 * s),
            ],
            color,
            tone=False,
        )
    else:  # text: two lines of lettering
        for k, w in ((-0.06, 0.15), (0.05, 0.1)):
            lc = offset(c, body.up, -k * s)
            paint.line(offset(lc, body.side, -w * s), offset(lc, body.side, w * s), color, 0.06 * s)


def _backpack_back(paint: Painter, body: Body, app: Appearance) -> None:
    q, s, up, side = body.q, body.s, body.up, body.side
    c = _lerp(q[NECK], midpoint(q[R_HIP], q[L_HIP]), 0.45)
    w, h = 0.26 * s, 0.32 * s
    corners = []
    for sx, sy in ((-1, -0.7), (-0.8, -1), (0.8, -1), (1, -0.7), (1, 0.8), (0.85, 1), (-0.85, 1), (-1, 0.8)):
        corners.append(offset(offset(c, side, sx * w), up, -sy * h))
    paint.poly(corners, app.carry_color)
    pocket = offset(c, up, -0.55 * h)
    paint.poly(
        [
            offset(offset(pocket, side, sx * 0.6 * w), up, sy * 0.35 * h)
            for sx, sy in ((-1, 1), (1, 1), (1, -1), (-1, -1))
        ],
        _scaled(app.carry_color, 0.8),
    )


def _backpack_straps(paint: Painter, body: Body, app: Appearance) -> None:
    q, s = body.q, body.s
    color = _scaled(app.carry_color, 0.7)
    for sho in (q[R_SHO], q[L_SHO]):
        top = _lerp(sho, q[NECK], 0.3)
        paint.line(top, offset(_lerp(top, sho, 0.2), body.up, -0.55 * s), color, 0.06 * s)


def _backpack_side(paint: Painter, body: Body, app: Appearance) -> None:
    q, s = body.q, body.s
    if not (q[NECK] and q[R_HIP] and q[L_HIP]):
        return
    back = (-body.facing, 0.0)
    c = offset(_lerp(q[NECK], midpoint(q[R_HIP], q[L_HIP]), 0.42), back, 0.3 * s)
    paint.ellipse(c, 0.15 * s, 0.3 * s, math.degrees(math.atan2(body.up[0], -body.up[1])), app.carry_color)


def _bag(paint: Painter, body: Body, app: Appearance) -> None:
    q, s = body.q, body.s
    hip = q[L_HIP] if app.carry_side > 0 else q[R_HIP]
    strap_from = q[R_SHO] if app.carry_side > 0 else q[L_SHO]
    outward = (body.side[0] * app.carry_side, body.side[1] * app.carry_side)
    c = offset(offset(hip, outward, 0.2 * s), body.up, 0.02 * s)
    paint.line(_lerp(strap_from, q[NECK], 0.4), c, _scaled(app.carry_color, 0.6), max(1.0, 0.035 * s))
    w, h = 0.15 * s, 0.12 * s
    paint.poly(
        [offset(offset(c, outward, sx * w), body.up, sy * h) for sx, sy in ((-1, 1), (1, 1), (1, -1), (-1, -1))],
        app.carry_color,
    )


def _long_hair(paint: Painter, body: Body, app: Appearance) -> None:
    """Hair falling behind the head (front view) or over the upper back (back view): an oval
    from the crown down to the chin or past the shoulders."""
    c, r = body.head_center, body.head_radius
    if c is None:
        return
    drop = (0.25 if app.hair_length == 1 else 0.6) * body.s
    centre = offset(c, body.up, -0.5 * drop)
    if body.view == "side":  # hair hangs behind the head, not around the face
        centre = offset(centre, (float(body.facing), 0.0), -0.45 * r)
    angle = math.degrees(math.atan2(body.up[0], -body.up[1]))
    paint.ellipse(centre, 1.12 * r, 1.05 * r + 0.5 * drop, angle, app.hair)


def _head(paint: Painter, body: Body, app: Appearance, detail: bool) -> None:
    c, r = body.head_center, body.head_radius
    if c is None:
        return
    q, p, up = body.q, body.p, body.up
    angle = math.degrees(math.atan2(up[0], -up[1]))
    if q[NECK] and not (body.view == "back" and app.hair_length > 0):  # long hair hides it
        paint.capsule(q[NECK], _lerp(q[NECK], c, 0.7), 0.1 * body.s * app.build, 0.09 * body.s, app.skin)
    if body.view == "back":
        paint.ellipse(offset(c, up, 0.05 * r), 0.95 * r, 1.1 * r, angle, app.hair)
        return
    if body.view == "side":
        fwd = (float(body.facing), 0.0)
        paint.ellipse(offset(c, fwd, 0.08 * r), 0.85 * r, 0.95 * r, angle, app.skin)
        paint.ellipse(offset(offset(c, fwd, -0.3 * r), up, 0.22 * r), 0.72 * r, 0.8 * r, angle, app.hair)
        nose = p[NOSE]
        if nose and distance(nose, c) > 0.7 * r:
            paint.ellipse(nose, 0.16 * r, 0.16 * r, 0.0, app.skin, tone=False)
    else:
        paint.ellipse(offset(c, up, 0.15 * r), 0.95 * r, 1.05 * r, angle, app.hair)
        paint.ellipse(offset(c, up, -0.12 * r), 0.82 * r, 1.0 * r, angle, app.skin)
        if app.hair_length == 0 and r > 3:  # short hair: a fringe line on the forehead
            paint.ellipse(offset(c, up, 0.55 * r), 0.7 * r, 0.3 * r, angle, app.hair, tone=False)
    eye_color = (40, 30, 28)
    for e in (p[R_EYE], p[L_EYE]):
        if e:
            er = max(0.55, 0.1 * r)
            paint.ellipse(e, er, er * (0.8 if detail else 1.0), angle, eye_color, tone=False)
            if detail:
                paint.ellipse(offset(e, up, 0.22 * r), 0.16 * r, 0.04 * r, angle, _scaled(app.hair, 0.8), tone=False)
    if detail and p[NOSE] and (p[R_EYE] or p[L_EYE]):
        eyes = [e for e in (p[R_EYE], p[L_EYE]) if e]
        em = (sum(e[0] for e in eyes) / len(eyes), sum(e[1] for e in eyes) / len(eyes))
        mouth = offset(p[NOSE], (p[NOSE][0] - em[0], p[NOSE][1] - em[1]), 0.75)
        paint.ellipse(mouth, 0.2 * r, 0.06 * r, angle, (150, 70, 70), tone=False)
