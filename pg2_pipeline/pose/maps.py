"""Batched PG² pose maps and pose masks (Ma et al. 2017, Sec. 3.1 and the pose-mask L1), in torch.

Both are drawn from the project's one pose representation (:mod:`pg2_pipeline.skeleton`),
``yx`` of shape ``(B, 18, 2)``: (y, x) pixel coordinates, a joint with a negative coordinate is
missing. They follow the PG² reference code (``_getSparseKeypoint``, ``_getPoseMask``) pixel for
pixel:

* **pose map** ``(B, 18, H, W)``: channel k is 1 on the solid disk of radius ``radius`` (the
  integer offsets (i, j) with sqrt(i² + j²) <= radius) around ``(int(y_k), int(x_k))``, clipped
  to the image; a missing joint gives an all-zero channel.
* **pose mask** ``(B, 1, H, W)``: for each limb of :data:`~pg2_pipeline.skeleton.LIMBS`
  whose two ends are visible, the same disks at both ends and at ``p0 + (p1 - p0) * i / n`` for
  i = 1 .. n-1, ``n = int(dist / radius)``, each point truncated with ``int()``; then a closing
  with a 5×5 square: ``skimage.morphology`` dilation then erosion, whose default border mode
  (``reflect``) amounts to ignoring the pixels outside the image.

Outputs are ``torch.bool`` (one byte a pixel: the compact form for data loaders and caches) on
the input's device; :func:`to_network` gives the ``2*map - 1`` float input of G1, and
:func:`network_maps_and_masks` draws that float form directly (what the training loader uses).

Beyond the reference, which never sees them: joints past the bottom or right border are drawn
clipped, and so are the limb points between them; a non-finite coordinate counts as missing (the
reference's ``int()`` raises on it); float64 coordinates above 2**31 are clamped there.

How it is fast. A disk depends on its centre only through the centre's clamped pixel (a
"cell"), so two tables are built once per image size and device (about 2.7 MB at 128×64,
20 MB at 256×256): for the maps, the flat indices of each cell's in-image disk pixels (an outside
offset repeats an inside one, so nothing is clipped per pixel; a disk that draws nothing goes
to a spare plane), scattered into a zeroed bool buffer; for the masks, each cell's clipped disk
already dilated by the closing's square, which is one span per row, written as +1 at its start
and -1 past its end into a difference buffer that a running sum turns into coverage (the
closing's dilation distributes over the union of disks). The closing's erosion then runs on
rows packed into 64-bit words. Limb points are tried in a window of K per limb: on CPU, K is
sized from the batch and the points that draw nothing are dropped (host syncs, free there);
on CUDA a fixed window goes through masked, and nothing syncs.
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from pg2_pipeline.skeleton import LIMBS, NUM_JOINTS

DEFAULT_RADIUS = 4
CLOSING_SIZE = 5  # side of the square footprint of the mask's closing (PG² reference: square(5))
_COORD_MAX = float(2**31)  # larger float64 coordinates are clamped: no image is that big
_WORD = 64  # bits in a packed word
# x * _PACK_MAGIC puts bit 0 of byte k of x (bytes holding 0 or 1) at bit 56 + k: the partial
# products all land on distinct bits, so nothing carries into the top byte.
_PACK_MAGIC = 0x0102040810204080

if sys.byteorder != "little":  # the bool <-> packed-word views assume it
    raise ImportError("pg2_pipeline.pose.maps assumes a little-endian machine")


@dataclass(frozen=True)
class _Plan:
    """What depends only on (height, width, radius, device); built once, see :func:`_plan`."""

    height: int
    width: int
    radius: int
    cell_cols: Tensor  # () long: cell = row * (W + radius + 1) + col of a clamped centre
    map_table: Tensor  # (cells, P) int32: in-plane flat index of each disk pixel
    touches: Tensor  # (cells,) bool: the disk has a pixel in the image
    span_table: Tensor  # (cells, 2·rows) int32: start, end + 1 of the dilated disk's row spans
    words: int  # 64-column words in a row of the image (the row stride of the mask buffers)
    k_max: int  # most limb points of one limb that can touch the image, plus slack
    limb_ends: Tensor  # (46,) long: the first ends of the 23 limbs, then the second ends
    incidence: Tensor  # (23, 18) bool: limb l has joint j
    unpack_not: Tensor  # (256,) int64: byte -> 8 bytes holding the bits of NOT byte
    inside_bits: Tensor | None  # (words, 1, 1) int64: bits of the columns < W; None: all are
    _cache: dict = field(default_factory=dict)

    def bounds(self, dtype: torch.dtype, dims: int = 3) -> tuple[Tensor, Tensor]:
        """``(2, 1, …)`` of ``dims`` dimensions: (0, 0) and (H + radius, W + radius) as ``dtype``.
        A centre at or past the upper bound draws nothing, so clamping there keeps the tables
        small and the int casts defined."""
        key = (dtype, dims)
        if key not in self._cache:
            with torch.inference_mode(False):  # cached: ordinary tensors, whatever the caller's mode
                hi = torch.tensor([self.height + self.radius, self.width + self.radius], dtype=dtype)
                hi = hi.view(2, *[1] * (dims - 1)).to(self.map_table.device)
                self._cache[key] = (torch.zeros_like(hi), hi)
        return self._cache[key]

    def one(self, dtype: torch.dtype) -> Tensor:
        if dtype not in self._cache:
            with torch.inference_mode(False):
                self._cache[dtype] = torch.ones((), dtype=dtype, device=self.map_table.device)
        return self._cache[dtype]

    def signs(self, n: int) -> Tensor:
        """``(n,)`` int16 +1, -1, +1, … (a view of a cached buffer)."""
        signs = self._cache.get("signs")
        if signs is None or signs.numel() < n:
            with torch.inference_mode(False):
                signs = torch.tensor([1, -1], dtype=torch.int16).repeat(max(n, 1 << 16) // 2 + 1)
                signs = self._cache["signs"] = signs.to(self.map_table.device)
        return signs[:n]


def _half_widths(radius: int) -> Tensor:
    """Disk row i (-radius .. radius) spans columns -w .. w, w = floor(sqrt(radius² - i²))."""
    return torch.tensor([math.isqrt(radius * radius - i * i) for i in range(-radius, radius + 1)])


def _map_table(height: int, width: int, radius: int) -> tuple[Tensor, Tensor]:
    span = torch.arange(-radius, radius + 1)
    di, dj = torch.meshgrid(span, span, indexing="ij")
    keep = di * di + dj * dj <= radius * radius  # == sqrt(i² + j²) <= radius for integers
    di, dj = di[keep], dj[keep]
    rows = torch.arange(height + radius + 1).view(-1, 1, 1) + di  # (Hc, 1, P)
    cols = torch.arange(width + radius + 1).view(1, -1, 1) + dj  # (1, Wc, P)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)  # (Hc, Wc, P)
    flat = rows * width + cols
    # An outside offset repeats the first inside one of the same disk: writing a pixel twice is
    # harmless, and the scatter needs no clipping.
    first = inside.to(torch.uint8).argmax(dim=-1, keepdim=True)
    flat = torch.where(inside, flat, flat.gather(-1, first))
    touches = inside.any(dim=-1)
    flat = torch.where(touches.unsqueeze(-1), flat, 0).flatten(0, 1)
    return flat.to(torch.int32), touches.flatten()


def _span_table(height: int, width: int, radius: int, half: int, stride: int) -> Tensor:
    """Per cell (centre r, c), the disk clipped to the image then dilated by a (2·half+1)²
    square (ignoring outside pixels, like the closing), as one span per output row r + o.

    Dilation is a union of shifted copies; the clipped disk rows that reach output row r + o are
    i = o - half .. o + half, and each holds column min(c, W-1) (if it has pixels at all), so the
    union of the widened rows is one interval: c -/+ (the widest such row + half), clipped.
    Entries are flat indices of the difference buffer (rows of ``stride`` columns, row H spare).
    An end + 1 past the last column is the next row's first column: the running sum that turns
    the differences into coverage runs over whole planes, so it closes the span right there.
    """
    hw = _half_widths(radius)
    r = torch.arange(height + radius + 1).view(-1, 1, 1, 1)
    c = torch.arange(width + radius + 1).view(1, -1, 1, 1)
    out = torch.arange(-(radius + half), radius + half + 1).view(1, 1, -1, 1)  # output row offset
    i = out + torch.arange(-half, half + 1)  # disk rows within reach, (1, 1, O, S)
    w = hw[(i + radius).clamp(0, 2 * radius)]
    has_pixels = (i.abs() <= radius) & (r + i >= 0) & (r + i < height) & (c - w <= width - 1)
    widest = torch.where(has_pixels, w, -1).amax(dim=-1)  # (Hc, Wc, O); -1: nothing
    r, c, out = r[..., 0], c[..., 0], out[..., 0]
    row = r + out
    ok = (widest >= 0) & (row >= 0) & (row < height)
    start = row * stride + (c - widest - half).clamp(min=0)
    end = row * stride + (c + widest + half).clamp(max=width - 1) + 1
    spare = height * stride
    table = torch.stack([torch.where(ok, start, spare), torch.where(ok, end, spare)], dim=-1)
    return table.flatten(2).flatten(0, 1).to(torch.int32)


@functools.lru_cache(maxsize=32)
def _plan(height: int, width: int, radius: int, device: torch.device) -> _Plan:
    with torch.inference_mode(False):  # cached: ordinary tensors, whatever the caller's mode
        return _build_plan(height, width, radius, device)


def _build_plan(height: int, width: int, radius: int, device: torch.device) -> _Plan:
    if (height + 1) * (width + _WORD + 1) >= 2**31:
        raise ValueError(f"image size {height}x{width} is too large for the int32 index tables")
    map_table, touches = _map_table(height, width, radius)
    words = -(-width // _WORD)
    span_table = _span_table(height, width, radius, CLOSING_SIZE // 2, words * _WORD)
    limbs = torch.as_tensor(LIMBS, dtype=torch.long)
    incidence = torch.zeros(len(LIMBS), NUM_JOINTS, dtype=torch.bool)
    incidence[torch.arange(len(LIMBS)).repeat(2), limbs.T.flatten()] = True
    bits = (torch.arange(256).view(-1, 1) >> torch.arange(8)) & 1  # (256, 8)
    unpack_not = ((1 - bits) << (8 * torch.arange(8))).sum(dim=1)
    inside_bits = None
    if width % _WORD:
        col = torch.arange(words * _WORD).view(words, _WORD)
        inside_bits = torch.where(col < width, torch.ones((), dtype=torch.long) << (col % _WORD), 0).sum(1)
        inside_bits = inside_bits.view(words, 1, 1).to(device)
    # Limb points are >= radius apart, so the stretch of a limb in [0, H+r) × [0, W+r) holds at
    # most span / radius + 1 of them; the first index tried may be up to two early.
    span = math.hypot(height + radius, width + radius)
    return _Plan(
        height=height,
        width=width,
        radius=radius,
        cell_cols=torch.tensor(width + radius + 1, device=device),
        map_table=map_table.to(device),
        touches=touches.to(device),
        span_table=span_table.to(device),
        words=words,
        k_max=int(span / radius) + 3,
        limb_ends=limbs.T.flatten().to(device),
        incidence=incidence.to(device),
        unpack_not=unpack_not.to(device),
        inside_bits=inside_bits,
    )


def _check(yx: Tensor, height: int, width: int, radius: int) -> None:
    if not isinstance(yx, Tensor) or yx.dim() != 3 or tuple(yx.shape[1:]) != (NUM_JOINTS, 2):
        shape = tuple(yx.shape) if isinstance(yx, Tensor) else type(yx).__name__
        raise ValueError(f"yx must be a (B, {NUM_JOINTS}, 2) tensor of (y, x) keypoints, got {shape}")
    if not yx.is_floating_point():
        raise TypeError(f"yx must be a floating-point tensor (-1 = missing), got {yx.dtype}")
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got height={height}, width={width}")
    if radius < 1:
        raise ValueError(f"radius must be >= 1 (limb points are dist / radius apart), got {radius}")


def _cells(c: Tensor, plan: _Plan) -> Tensor:
    """Cells of coordinate-first points ``(2, …)``: pixels truncated like ``int()`` (they are >= 0
    where it matters, so truncation is floor) after clamping to :meth:`_Plan.bounds`."""
    lo, hi = plan.bounds(c.dtype, c.dim())
    pixels = torch.clamp(c, lo, hi).long()
    return torch.addcmul(pixels[1], pixels[0], plan.cell_cols)


@dataclass
class _Joints:
    yx: Tensor  # (2, B, 18) coordinate-first, float32 or float64; non-finite -> -1
    visible: Tensor  # (B, 18) bool
    cells: Tensor  # (B, 18) long
    drawn: Tensor  # (B, 18) bool: visible and its disk touches the image


def _joints(yx: Tensor, plan: _Plan) -> _Joints:
    if yx.dtype not in (torch.float32, torch.float64):
        yx = yx.float()  # half precision: exact in float32
    yx = yx.nan_to_num(-1.0, -1.0, -1.0)  # non-finite: missing
    if yx.dtype == torch.float64:  # float32 cannot overflow the float64 limb arithmetic
        yx = yx.clamp(max=_COORD_MAX)
    # Coordinate-first keeps the small elementwise ops below on contiguous rows.
    yx = yx.permute(2, 0, 1).contiguous()
    visible = (yx >= 0).all(dim=0)
    cells = _cells(yx, plan)
    return _Joints(yx, visible, cells, visible & plan.touches.index_select(0, cells.flatten()).view_as(cells))


# The work runs in inference mode (less dispatch per op, which is most of the cost of a small
# batch) and writes into outputs allocated outside it, so callers get ordinary tensors.


def _new_maps(b: int, plan: _Plan, device: torch.device, dtype: torch.dtype = torch.bool, off: float = 0) -> Tensor:
    """The flat buffer of the maps, filled with ``off``, plus a spare plane at the end."""
    return torch.full(((b * NUM_JOINTS + 1) * plan.height * plan.width,), off, dtype=dtype, device=device)


def _draw_maps(j: _Joints, plan: _Plan, buf: Tensor, on: float = True) -> None:
    plane = plan.height * plan.width
    size = buf.numel() - plane
    base = torch.where(j.drawn.flatten(), torch.arange(0, size, plane, device=buf.device), size)
    idx = base.unsqueeze(-1) + plan.map_table.index_select(0, j.cells.flatten())  # (B*18, P)
    buf.index_fill_(0, idx.flatten(), on)


def _maps_view(buf: Tensor, b: int, plan: _Plan) -> Tensor:
    return buf[: b * NUM_JOINTS * plan.height * plan.width].view(b, NUM_JOINTS, plan.height, plan.width)


def _limb_points(j: _Joints, plan: _Plan, sync: bool) -> tuple[Tensor, Tensor, Tensor]:
    """The intermediate limb points ``p0 + (p1 - p0) * i / n``, i = 1 .. n-1: their cells
    ``(B, 23, K)``, which of them exist ``(B, 23, K)``, and which limbs are drawn ``(B, 23)``.

    Computed in float64 in the reference's order of operations, so each point truncates to the
    same pixel. Per limb only a window of K consecutive i is tried, from (about) the first point
    inside ``[0, H + r) × [0, W + r)``: the points are never negative, and past those bounds a
    disk draws nothing.
    """
    b, limbs = j.visible.shape[0], len(LIMBS)
    ends = j.yx.index_select(2, plan.limb_ends).double().view(2, b, 2, limbs)
    ok_limb = j.visible.index_select(1, plan.limb_ends).view(b, 2, limbs).all(dim=1)  # (B, 23)
    p0 = ends[:, :, 0]  # (2, B, 23)
    d = ends[:, :, 1] - p0
    dist = (d * d).sum(dim=0).sqrt()  # (r0-r1)**2 + (c0-c1)**2: a sum of two, in any order
    # (B, 23): int() of a non-negative number; 0 for a hidden limb (no points).
    n = torch.floor(dist / plan.radius) * ok_limb
    _, hi = plan.bounds(d.dtype)
    if sync and not bool((p0 > hi).any()):
        # Every limb starts inside its bounds: points i = 1 .. n-1, at most K of them.
        k = min(plan.k_max, int(n.amax().item()) - 1) if n.numel() else 0
        i = torch.arange(1, max(k, 0) + 1, dtype=d.dtype, device=d.device)  # (K,)
        exists = i < n.unsqueeze(-1)  # (B, 23, K)
    else:
        # A coordinate starting past its bound and heading back enters after
        # i > (p0 - bound) n / -d; one that does not head back never enters (first -> n: none).
        enter = ((hi - p0).clamp(max=0) * n / d.clamp(max=-1e-300)).amax(dim=0)
        first = torch.clamp(torch.floor(enter), plan.one(d.dtype), n)  # (B, 23)
        k = plan.k_max
        if sync:  # the widest window this batch needs
            k = min(k, int((n - first).amax().item())) if n.numel() else 0
        i = first.unsqueeze(-1) + torch.arange(max(k, 0), dtype=d.dtype, device=d.device)
        exists = i < n.unsqueeze(-1)  # (B, 23, K)
    pts = p0.unsqueeze(-1) + d.unsqueeze(-1) * i / n.clamp(min=1.0).unsqueeze(-1)  # (2, B, 23, K)
    return _cells(pts, plan), exists, ok_limb


def _pack(canvas: Tensor) -> Tensor:
    """``(B, H, 64·words)`` bool -> ``(words, B, H)`` int64, column c at bit c % 64 of word
    c // 64. Words come first so the row shifts below run over contiguous memory."""
    b, h, _ = canvas.shape
    # 8 bools -> the top byte of (their 8 bytes * magic); 8 such bytes -> one word.
    prod = canvas.view(torch.int64) * _PACK_MAGIC
    words = prod.view(torch.uint8)[..., 7::8].contiguous().view(torch.int64)  # (B, H, words)
    return words.view(1, b, h) if words.shape[-1] == 1 else words.permute(2, 0, 1).contiguous()


def _widen(w: Tensor) -> Tensor:
    """Packed rows ``(words, B, H)`` OR-ed with their left and right neighbour columns."""
    # An arithmetic >> also ORs column 63 of a word into itself: harmless, it is in w already.
    out = w | (w << 1) | (w >> 1)
    n = w.shape[0]
    if n > 1:  # carries between the words of a row (narrow + in-place: no __setitem__ copy)
        out.narrow(0, 1, n - 1).bitwise_or_((w.narrow(0, 0, n - 1) >> (_WORD - 1)) & 1)
        out.narrow(0, 0, n - 1).bitwise_or_(w.narrow(0, 1, n - 1) << (_WORD - 1))
    return out


def _dilate_square(w: Tensor, half: int) -> Tensor:
    """Dilation of packed rows ``(words, B, H)`` by a (2·half+1)² square; outside pixels are 0."""
    for _ in range(half):
        w = _widen(w)
    h = w.shape[-1]
    padded = F.pad(w, (half, half))  # zero rows above and below
    out = padded[..., :h]
    for i in range(1, 2 * half + 1):
        out = out | padded[..., i : i + h]
    return out


def _new_masks(b: int, plan: _Plan, device: torch.device) -> Tensor:
    """The masks' output: 8 pixels a word (int64), filled by :func:`_draw_masks`."""
    return torch.empty(b * plan.height * plan.words * 8, dtype=torch.int64, device=device)


def _draw_masks(j: _Joints, plan: _Plan, sync: bool, out: Tensor) -> None:
    b, h, dev = j.visible.shape[0], plan.height, j.yx.device
    point_cells, exists, ok_limb = _limb_points(j, plan, sync)
    # Disk centres: each end of a drawn limb once (the reference draws it once per limb: the
    # same pixels), then the limb points.
    ends = j.visible & (ok_limb.unsqueeze(-1) & plan.incidence).any(dim=1)  # (B, 18)
    cells = torch.cat([j.cells, point_cells.flatten(1)], dim=1).flatten()  # (B * centres)
    keep = torch.cat([ends, exists.flatten(1)], dim=1).flatten()
    centres = keep.numel() // b
    cols = plan.words * _WORD
    plane = (h + 1) * cols  # row h: spare
    index = torch.int32 if (b + 1) * plane < 2**31 else torch.long  # int32: half the traffic
    if sync:  # drop the centres that draw nothing
        pick = keep.nonzero().squeeze(1)
        cells = cells.index_select(0, pick)
        base = (torch.div(pick, centres, rounding_mode="floor") * plane).to(index)
    else:
        base = torch.arange(0, b * plane, plane, dtype=index, device=dev).repeat_interleave(centres)
        base = torch.where(keep, base, b * plane)
    # The closing's dilation: the spans of the dilated disks, as +1 at the start, -1 past the end.
    idx = (base.unsqueeze(1) + plan.span_table.index_select(0, cells)).flatten()
    diff = torch.zeros((b + 1) * plane, dtype=torch.int16, device=dev)  # + a spare plane
    diff.index_add_(0, idx, plan.signs(idx.numel()))
    coverage = diff[: b * plane].view(b, plane).cumsum(dim=-1, dtype=torch.int16)[:, : h * cols]
    dilated = coverage.bool()  # counts are >= 0; .bool() is much faster than > 0 on CPU
    # The erosion: NOT (dilation of NOT), outside pixels are neither.
    background = ~_pack(dilated.view(b, h, cols))
    if plan.inside_bits is not None:
        background &= plan.inside_bits
    closed_not = _dilate_square(background, CLOSING_SIZE // 2)  # (words, B, H)
    closed_not = closed_not[0] if plan.words == 1 else closed_not.permute(1, 2, 0).contiguous()
    torch.index_select(plan.unpack_not, 0, closed_not.view(torch.uint8).flatten().long(), out=out)


def _masks_view(out: Tensor, b: int, plan: _Plan) -> Tensor:
    mask = out.view(torch.bool).view(b, 1, plan.height, plan.words * _WORD)
    return mask if plan.inside_bits is None else mask[..., : plan.width].contiguous()


def _default_sync(device: torch.device, sync: bool | None) -> bool:
    return device.type == "cpu" if sync is None else sync


def pose_maps(yx: Tensor, height: int, width: int, radius: int = DEFAULT_RADIUS) -> Tensor:
    """``(B, 18, H, W)`` bool pose maps of ``(B, 18, 2)`` (y, x) keypoints (see the module doc)."""
    _check(yx, height, width, radius)
    b, device = yx.shape[0], yx.device
    plan = _plan(height, width, radius, device)
    maps = _new_maps(b, plan, device)
    with torch.inference_mode():
        _draw_maps(_joints(yx, plan), plan, maps)
    return _maps_view(maps, b, plan)


def pose_masks(
    yx: Tensor, height: int, width: int, radius: int = DEFAULT_RADIUS, *, sync: bool | None = None
) -> Tensor:
    """``(B, 1, H, W)`` bool pose masks of ``(B, 18, 2)`` (y, x) keypoints (see the module doc).

    ``sync`` (default: True on CPU, False elsewhere) lets the limb points be counted and the
    ones that draw nothing be dropped, which reads numbers back from the device; without it a
    fixed window that covers any pose goes through, masked. Same result either way.
    """
    _check(yx, height, width, radius)
    b, device = yx.shape[0], yx.device
    plan = _plan(height, width, radius, device)
    masks = _new_masks(b, plan, device)
    if b:
        with torch.inference_mode():
            _draw_masks(_joints(yx, plan), plan, _default_sync(device, sync), masks)
    return _masks_view(masks, b, plan)


def pose_maps_and_masks(
    yx: Tensor, height: int, width: int, radius: int = DEFAULT_RADIUS, *, sync: bool | None = None
) -> tuple[Tensor, Tensor]:
    """Both at once, sharing the per-joint work: ``(B, 18, H, W)`` maps, ``(B, 1, H, W)`` masks."""
    return _maps_and_masks(yx, height, width, radius, sync, torch.bool, off=False, on=True)


def network_maps_and_masks(
    yx: Tensor,
    height: int,
    width: int,
    radius: int = DEFAULT_RADIUS,
    *,
    dtype: torch.dtype = torch.float32,
    sync: bool | None = None,
) -> tuple[Tensor, Tensor]:
    """What the training loader feeds the networks: ``(B, 18, H, W)`` maps as ``2*map - 1`` and
    ``(B, 1, H, W)`` masks as 0/1, both ``dtype``. Equal to ``to_network(maps, dtype)`` and
    ``masks.to(dtype)`` of :func:`pose_maps_and_masks`, without the bool maps in between: the
    disks are drawn straight into a buffer of -1 (half the time of drawing, then converting)."""
    maps, masks = _maps_and_masks(yx, height, width, radius, sync, dtype, off=-1, on=1)
    return maps, masks.to(dtype)


def _maps_and_masks(
    yx: Tensor,
    height: int,
    width: int,
    radius: int,
    sync: bool | None,
    map_dtype: torch.dtype,
    off: float,
    on: float,
) -> tuple[Tensor, Tensor]:
    _check(yx, height, width, radius)
    b, device = yx.shape[0], yx.device
    plan = _plan(height, width, radius, device)
    maps, masks = _new_maps(b, plan, device, map_dtype, off), _new_masks(b, plan, device)
    with torch.inference_mode():
        joints = _joints(yx, plan)
        _draw_maps(joints, plan, maps, on)
        if b:
            _draw_masks(joints, plan, _default_sync(device, sync), masks)
    return _maps_view(maps, b, plan), _masks_view(masks, b, plan)


def to_network(maps: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """The network's view of pose maps (or masks) of {0, 1} values: ``2*map - 1``, in {-1, 1}, as
    ``dtype`` (one pass; the input is left alone)."""
    on = maps if maps.dtype == torch.bool else maps != 0
    one = torch.ones((), dtype=dtype, device=maps.device)
    return torch.where(on, one, -one)
