"""Layout readers: a folder or CSV of some method's generated images → one item per expected pair.

Each lineage saves its test outputs its own way (read from the public code; DESIGN.md, "Evaluation protocols"):

=================  ===========================================  ==================================================
lineage            file name                                    content
=================  ===========================================  ==================================================
PATN               ``<from>.jpg___<to>.jpg_vis.jpg``            strip of 5: condition, its pose, target, its pose,
                                                                generated (``models/PATN.py``, PIL JPEG)
Deformable GAN     ``<from>.jpg_<to>.jpg.png``                  strip of 3: condition, target, generated
                                                                (``test.py save_images``)
GFLA, DPTN, PIDM   ``<from>_2_<to>_vis.jpg`` / ``.png``         the generated image; GFLA ``--save_input`` adds
                                                                ``_ref``, ``_gt`` and the strip ``_all`` =
                                                                [condition, generated, target]
PCDMs              ``<from>_to_<to>.png``                       the generated image
=================  ===========================================  ==================================================

So the ``files`` layout parses names back to pairs: extension, then ``_vis``, then every occurrence of every
separator, each side with or without the images' own extension, and keeps the split that names an expected pair
(Market names hold underscores, so no single split is right). ``strip`` cuts a tile out of such names' images;
``csv`` takes explicit ``from,to,generated`` rows. The scan decodes nothing (it reads image headers where it needs
sizes); :meth:`Item.load` decodes one image and raises :class:`BadImage` with the reason the caller records.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

LAYOUTS = ("files", "strip", "csv")
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
SEPARATORS = ("___", "_2_", "_to_")  # PATN; GFLA, DPTN, PIDM; PCDMs
_DEFORMABLE_SEP = re.compile(r"\.(?:jpe?g|png)_", re.IGNORECASE)  # Deformable GAN: "<from>.jpg_<to>.jpg"
GENERATED_SUFFIX = "_vis"  # PATN, GFLA, DPTN, PIDM name their result "..._vis"
# GFLA --save_input writes these beside each result; named so that a folder holding them says what they are.
INPUT_COPIES = {"_ref": "GFLA's copy of the condition image", "_gt": "GFLA's copy of the target image"}


@dataclass(frozen=True)
class StripDefault:
    """Which tile of a lineage's result strip holds the generated image."""

    lineage: str
    tiles: int
    generated_tile: int  # 0-based
    order: tuple[str, ...]
    name_suffix: str  # the default applies to names ending so (before the extension); "" = any
    where: str  # the code that writes the strip


STRIP_DEFAULTS = (
    StripDefault("PATN", 5, 4, ("condition", "condition pose", "target", "target pose", "generated"), "",
                 "tengteng95/Pose-Transfer models/PATN.py get_current_visuals"),
    StripDefault("Deformable GAN", 3, 2, ("condition", "target", "generated"), "",
                 "AliaksandrSiarohin/pose-gan test.py save_images"),
    StripDefault("GFLA", 3, 1, ("condition", "generated", "target"), "_all",
                 "RenYurui/Global-Flow-Local-Attention model/base_model.py save_results (--save_input)"),
)  # fmt: skip
STRIP_SUFFIXES = tuple(sorted({d.name_suffix for d in STRIP_DEFAULTS} - {""}))


class BadImage(ValueError):
    """An item's file cannot be scored; the message is the reason."""


class NothingToScore(ValueError):
    """No item to score; raised by the caller with :func:`nothing_to_score_message`."""


@dataclass(frozen=True)
class Item:
    """One generated image to score."""

    from_name: str  # condition image name exactly as in the expected pairs
    to_name: str  # target image name as in the expected pairs
    source: str  # where it came from, for messages
    path: Path
    pair_index: int  # position in the expected pairs
    tile: int | None = None  # strips: the generated tile (0-based) ...
    tiles: int | None = None  # ... of this many
    tile_width: int | None = None  # strips: the width every tile must have (None: whatever width / tiles is)

    def load(self) -> np.ndarray:
        """uint8 (H, W, 3) RGB; the generated tile for strips. Raises :class:`BadImage`."""
        image = read_rgb(self.path)
        if self.tiles is None:
            return image
        width = image.shape[1]
        reason = _strip_width_problem(width, self.tiles, self.tile_width)
        if reason:
            raise BadImage(reason)
        w = width // self.tiles
        return np.ascontiguousarray(image[:, self.tile * w : (self.tile + 1) * w])


@dataclass(frozen=True)
class Problem:
    kind: Literal["unmatched", "bad", "missing"]
    source: str  # file, CSV row "file.csv:17", or for missing "from -> to"
    reason: str
    pair: tuple[str, str] | None = None  # the expected pair it concerns (bad, missing), else None


@dataclass
class LayoutScan:
    layout: str
    how: str  # one line: "detected ..." or "forced by --layout ..."
    items: list[Item]  # in the expected pairs' order, one per matched pair
    problems: list[Problem]
    tiles: int | None = None
    generated_tile: int | None = None
    generated: Path = field(default_factory=Path)  # what was scanned
    expected: int = 0  # number of expected pairs
    lineage: str | None = None  # strips: whose tile order was assumed (None: --generated-tile)

    def of_kind(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]


def read_rgb(path: Path) -> np.ndarray:
    """Decodes a whole image strictly: truncated data, other modes than RGB and unreadable files raise BadImage
    (OpenCV would hand back a partly grey truncated JPEG)."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode == "RGB":
                im.load()
                return np.array(im)  # writable: torch.from_numpy warns on read-only arrays
    except FileNotFoundError:
        raise BadImage("file not found") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise BadImage(f"unreadable image: {exc}") from None
    raise BadImage(f"not an RGB image (mode {mode})")


# ------------------------------------------------------------------------------------------ names


def _stem(name: str) -> str:
    """``name`` without a trailing image extension (any case)."""
    dot = name.rfind(".")
    return name[:dot] if dot > 0 and name[dot:].lower() in IMAGE_EXTS else name


def _splits(body: str):
    for sep in SEPARATORS:
        i = body.find(sep)
        while i > 0:
            yield body[:i], body[i + len(sep) :]
            i = body.find(sep, i + 1)
    for m in _DEFORMABLE_SEP.finditer(body):
        yield body[: m.end() - 1], body[m.end() :]


class _Expected:
    """The expected pairs keyed by their names' stems: a name matches with or without the images' extension."""

    def __init__(self, pairs: Sequence[tuple[str, str]]):
        self.pairs = [(str(a), str(b)) for a, b in pairs]
        self.index: dict[tuple[str, str], int] = {}
        for i, (a, b) in enumerate(self.pairs):
            key = (_stem(a), _stem(b))
            if key in self.index:
                j = self.index[key]
                raise ValueError(f"expected pairs {j} and {i} are the same pair {a} -> {b} (up to the extension)")
            self.index[key] = i
        self.names = {n for key in self.index for n in key}

    def lookup(self, from_name: str, to_name: str) -> set[int]:
        """Pairs named by the two sides, each taken as it stands or without an extension: a side may be a stem
        that itself ends in .jpg (Market holds a few ``*.jpg.jpg`` files, which GFLA names ``*.jpg_2_...``)."""
        return {
            i
            for key in product((from_name, _stem(from_name)), (to_name, _stem(to_name)))
            if (i := self.index.get(key)) is not None
        }

    def known_name(self, name: str) -> str | None:
        """The stem by which ``name`` is an image of the expected pairs, if it is one."""
        return name if name in self.names else _stem(name) if _stem(name) in self.names else None

    def match(self, file_name: str, suffixes: Sequence[str]) -> tuple[set[int], tuple[str, str] | None]:
        """Expected pairs some split of ``file_name`` names (after the extension and one of ``suffixes``), and
        for the reason when none does, the split naming most images of the expected pairs (at least one)."""
        base = _stem(file_name)
        # the suffix-stripped body first: its splits make the better reason
        bodies = [*(base[: -len(s)] for s in suffixes if base.endswith(s) and len(base) > len(s)), base]
        splits = [split for body in bodies for split in _splits(body)]
        hits = {i for left, right in splits for i in self.lookup(left, right)}
        other, best = None, 0
        for left, right in splits if not hits else ():
            sides = [self.known_name(left), self.known_name(right)]
            known = sum(n is not None for n in sides)
            if known > best:
                other, best = (sides[0] or _stem(left), sides[1] or _stem(right)), known
        return hits, other


_NOT_PARSED = "name not parsed: no split at ___, _2_, _to_ or .jpg_ names an expected pair"


def _unmatched_reason(expected: _Expected, name: str, hits: set[int], other, layout: str) -> str:
    if len(hits) > 1:
        named = " or ".join(" -> ".join(expected.pairs[i]) for i in sorted(hits))
        return f"name not parsed: ambiguous, it names {named}"
    for suffix, what in INPUT_COPIES.items():
        if expected.match(name, (suffix,))[0]:
            return f"{what} ({suffix}), not a generated image"
    if layout == "files":
        for d in STRIP_DEFAULTS:
            if d.name_suffix and expected.match(name, (d.name_suffix,))[0]:
                return f"a {d.lineage} '{d.name_suffix}' strip [{', '.join(d.order)}]; read it with --layout strip"
    if other is not None:
        strangers = [n for n in other if n not in expected.names]
        unknown = f" ({' and '.join(strangers)} in no expected pair)" if strangers else ""
        return f"pair not in the expected list: {other[0]} -> {other[1]}{unknown}"
    return _NOT_PARSED


# ------------------------------------------------------------------------------------------ scan


def scan(
    generated: Path,
    expected_pairs: Sequence[tuple[str, str]],
    *,
    layout: str = "auto",
    tiles: int | None = None,
    generated_tile: int | None = None,
    tile_size: tuple[int, int] | None = None,
) -> LayoutScan:
    """Items of ``generated`` (a folder, or a CSV for the csv layout) for ``expected_pairs``, in their order,
    and every file, row and pair that could not be used. ``tile_size`` = (height, width) of the dataset images,
    used to recognise strips; ``tiles`` / ``generated_tile`` force the strip geometry."""
    generated = Path(generated)
    if layout not in ("auto", *LAYOUTS):
        raise ValueError(f"unknown layout {layout!r} (expected auto, {', '.join(LAYOUTS)})")
    if tiles is not None and tiles < 2:
        raise ValueError(f"--tiles {tiles}: a strip has at least 2 tiles")
    if generated_tile is not None and (generated_tile < 0 or (tiles is not None and generated_tile >= tiles)):
        raise ValueError(f"--generated-tile {generated_tile} is not a tile of {tiles or 'the'} tiles (0-based)")
    if layout in ("files", "csv") and (tiles is not None or generated_tile is not None):
        raise ValueError(f"--tiles / --generated-tile apply to the strip layout, not {layout}")
    if not generated.exists():
        raise FileNotFoundError(f"{generated}: no such folder or CSV file")
    expected = _Expected(expected_pairs)
    is_csv = generated.is_file() and generated.suffix.lower() == ".csv"
    if layout == "csv" or (layout == "auto" and is_csv):
        if not is_csv:
            raise ValueError(f"{generated}: the csv layout reads a .csv file (columns from,to,generated)")
        if tiles is not None or generated_tile is not None:
            raise ValueError(f"--tiles / --generated-tile apply to the strip layout, not csv ({generated.name})")
        how = "forced by --layout csv" if layout == "csv" else f"detected csv: {generated.name} is a CSV file"
        return _scan_csv(generated, expected, how)
    if not generated.is_dir():
        raise ValueError(f"{generated}: expected a folder of images (or a .csv file for the csv layout)")
    return _scan_folder(generated, expected, layout, tiles, generated_tile, tile_size)


def nothing_to_score_message(generated: Path, scan: LayoutScan) -> str:
    """The one line of :class:`NothingToScore` for a scan without items: the folder or CSV, the layout expected
    and what was found instead."""
    expects = {
        "files": "one image per pair named <from>___<to>, <from>_2_<to>_vis, <from>_to_<to> or <from>.jpg_<to>.jpg",
        "strip": f"strips of {scan.tiles or 'N'} tiles named like the files layout",
        "csv": "rows from,to,generated naming existing images of the expected pairs",
    }[scan.layout]
    counts = ", ".join(f"{len(scan.of_kind(k)):,} {k}" for k in ("unmatched", "bad", "missing"))
    first = next((p for p in scan.problems if p.kind != "missing"), None)
    example = f"; e.g. {first.source}: {first.reason}" if first else ""
    return (
        f"nothing to score in {generated} ({scan.how}): the {scan.layout} layout expects {expects}; "
        f"0 of {scan.expected:,} expected pairs found ({counts}){example}"
    )


def _header(path: Path) -> tuple[int, int] | str:
    """(width, height) from the image header, or why it cannot be scored."""
    try:
        with Image.open(path) as im:
            if im.mode != "RGB":
                return f"not an RGB image (mode {im.mode})"
            return im.size
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        return f"unreadable image: {exc}"


def _strip_width_problem(width: int, tiles: int, tile_width: int | None) -> str | None:
    if width % tiles:
        return f"strip {width} px wide does not divide into {tiles} equal tiles"
    if tile_width is not None and width != tiles * tile_width:
        return f"strip {width} px wide is not {tiles} tiles of {tile_width} px"
    return None


def _is_strip(width: int, height: int, k: int, tile_size: tuple[int, int] | None) -> bool:
    """Whether a ``width`` × ``height`` image reads as ``k`` tiles side by side: each tile has the dataset images'
    aspect or is square (GFLA and PIDM generate DeepFashion at 256×256); without a tile size, a tile no wider than
    tall, as every person image of both datasets is."""
    if width <= height or width % k:
        return False
    w = width // k
    if tile_size is None:
        return w <= height
    th, tw = tile_size
    return w * th == tw * height or w == height


def _sizes_phrase(sizes: Counter) -> str:
    (w, h), n = sizes.most_common(1)[0]
    total = sum(sizes.values())
    if n == total:
        return f"{total:,} images {h}×{w}"
    return f"{total:,} images, {n:,} of them {h}×{w}"


def _strip_default(tiles: int, names: list[str]) -> StripDefault | None:
    stems = [_stem(n) for n in names]
    for d in STRIP_DEFAULTS:  # a suffix-specific default when most names carry its suffix
        if d.tiles == tiles and d.name_suffix and sum(s.endswith(d.name_suffix) for s in stems) * 2 > len(stems):
            return d
    return next((d for d in STRIP_DEFAULTS if d.tiles == tiles and not d.name_suffix), None)


def _scan_folder(folder, expected, layout, tiles, generated_tile, tile_size) -> LayoutScan:
    images, others, subfolders = [], [], 0
    with os.scandir(folder) as entries:
        for e in entries:
            if e.name.startswith("."):  # .DS_Store, editors' files
                continue
            if e.is_dir():
                subfolders += 1
            elif os.path.splitext(e.name)[1].lower() in IMAGE_EXTS:
                images.append(e.name)
            else:
                others.append(e.name)
    images.sort()
    problems = [
        Problem("unmatched", str(folder / n), "not an image file (.png, .jpg or .jpeg expected)")
        for n in sorted(others)
    ]
    headers = {n: _header(folder / n) for n in images} if layout != "files" else {}
    sizes = Counter(h for h in headers.values() if isinstance(h, tuple))

    k, note = tiles, ""
    if layout == "auto":
        if not sizes:
            layout, note = "files", "detected files: no readable image"
        else:
            (W, H), _ = sizes.most_common(1)[0]
            fits = [c for c in ((tiles,) if tiles else (3, 5)) if _is_strip(W, H, c, tile_size)]
            shape = f"shaped {tile_size[0]}×{tile_size[1]} or square" if tile_size else "no wider than tall"
            if len(fits) == 1:
                layout, k = "strip", fits[0]
                note = f"detected strip: {_sizes_phrase(sizes)} = {k} tiles of {W // k} px"
            elif fits:
                layout = "files"
                note = f"detected files: {_sizes_phrase(sizes)} read as 3 or 5 tiles alike; pass --layout strip --tiles"
            else:
                tried = f"{tiles}" if tiles else "3 or 5"
                layout = "files"
                note = f"detected files: {_sizes_phrase(sizes)}, not {tried} tiles ({shape}) side by side"
    elif layout == "strip":
        if sizes:
            (W, H), _ = sizes.most_common(1)[0]
            k = k or next((c for c in (3, 5) if _is_strip(W, H, c, tile_size)), None)
            if k is None:
                raise ValueError(f"{folder}: {_sizes_phrase(sizes)} read as neither 3 nor 5 tiles; pass --tiles")
        note = f"forced by --layout strip: {_sizes_phrase(sizes) if sizes else 'no readable image'}"
        if k and sizes:
            note += f" = {k} tiles of {W // k} px" if W % k == 0 else f", not divisible into {k} tiles"
    else:
        note = "forced by --layout files"

    lineage, tile_width, suffixes = None, None, (GENERATED_SUFFIX,)
    if layout == "strip" and k:
        if generated_tile is None:
            d = _strip_default(k, images)
            if d is None:
                known = ", ".join(f"{d.tiles} ({d.lineage})" for d in STRIP_DEFAULTS)
                raise ValueError(f"no known generated tile for {k}-tile strips (known: {known}); pass --generated-tile")
            generated_tile, lineage = d.generated_tile, d.lineage
            note += f"; generated tile {generated_tile} ({d.lineage}: {', '.join(d.order)})"
        elif generated_tile >= k:
            raise ValueError(f"--generated-tile {generated_tile} is not a tile of {k} tiles (0-based)")
        else:
            note += f"; generated tile {generated_tile} (--generated-tile)"
        if sizes:  # every strip must have the tile width of the most common one
            (W, _), _ = sizes.most_common(1)[0]
            tile_width = W // k if W % k == 0 else None
        suffixes = (GENERATED_SUFFIX, *STRIP_SUFFIXES)
    if subfolders:
        note += f"; {subfolders} subfolder{'s' * (subfolders > 1)} not searched"

    chosen: dict[int, Item] = {}
    flagged: set[int] = set()  # pairs with a bad file
    for name in images:
        source = str(folder / name)
        hits, other = expected.match(name, suffixes)
        if len(hits) != 1:
            problems.append(Problem("unmatched", source, _unmatched_reason(expected, name, hits, other, layout)))
            continue
        (i,) = hits
        pair = expected.pairs[i]
        header = headers.get(name)
        reason = header if isinstance(header, str) else None
        if reason is None and layout == "strip":
            reason = _strip_width_problem(header[0], k, tile_width) if k else "no strip geometry (pass --tiles)"
        if reason is None and i in chosen:
            reason = f"duplicate of {chosen[i].source}"
        if reason is not None:
            problems.append(Problem("bad", source, reason, pair))
            flagged.add(i)
            continue
        if layout == "strip":
            source += f", tile {generated_tile} of {k} (0-based)"
        geometry = (generated_tile, k, tile_width) if layout == "strip" else ()
        chosen[i] = Item(pair[0], pair[1], source, folder / name, i, *geometry)
    if layout != "strip":
        k = generated_tile = None
    missing = "no file named for this pair"
    return _finish(folder, expected, layout, note, chosen, flagged, problems, missing, k, generated_tile, lineage)


def _finish(generated, expected, layout, how, chosen, flagged, problems, missing_reason, k, g, lineage):
    items = [chosen[i] for i in sorted(chosen)]
    for i, pair in enumerate(expected.pairs):
        if i not in chosen and i not in flagged:
            problems.append(Problem("missing", f"{pair[0]} -> {pair[1]}", missing_reason, pair))
    return LayoutScan(layout, how, items, problems, k, g, generated, len(expected.pairs), lineage)


def _scan_csv(path: Path, expected: _Expected, how: str) -> LayoutScan:
    chosen: dict[int, Item] = {}
    flagged: set[int] = set()
    problems: list[Problem] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("from", "to", "generated") if c not in columns]
        if missing:
            raise ValueError(f"{path}: no column {', '.join(missing)} (expected from,to,generated; found {columns})")
        reader.fieldnames = columns
        for row in reader:
            source = f"{path}:{reader.line_num}"
            a, b, g = ((row.get(c) or "").strip() for c in ("from", "to", "generated"))
            if not (a and b and g):
                problems.append(Problem("unmatched", source, "row lacks a from, to or generated value"))
                continue
            hits = expected.lookup(a, b)
            if len(hits) != 1:
                known = expected.known_name(a) is not None and expected.known_name(b) is not None
                why = "pair not in the expected list" if known else "names not in the expected pairs"
                if hits:
                    why = f"ambiguous, names {' or '.join(' -> '.join(expected.pairs[i]) for i in sorted(hits))}"
                problems.append(Problem("unmatched", source, f"{why}: {a} -> {b}"))
                continue
            (i,) = hits
            pair = expected.pairs[i]
            file = Path(g) if Path(g).is_absolute() else path.parent / g
            if os.path.splitext(g)[1].lower() not in IMAGE_EXTS:
                reason = f"{g} is not an image file (.png, .jpg or .jpeg expected)"
            elif not file.is_file():
                reason = f"generated file {g} not found"
            elif i in chosen:
                reason = f"duplicate of {chosen[i].source}"
            else:
                chosen[i] = Item(pair[0], pair[1], f"{source} ({g})", file, i)
                continue
            problems.append(Problem("bad", source, reason, pair))
            flagged.add(i)
    return _finish(path, expected, "csv", how, chosen, flagged, problems, f"no row in {path.name}", None, None, None)
