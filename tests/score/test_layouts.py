"""Layout readers (pg2_pipeline.score.layouts): every lineage's naming and strip order reads back to the same
items, and every file or pair that cannot be scored is reported with its reason."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pg2_pipeline.data.annotations import standard_file
from pg2_pipeline.score.layouts import BadImage, nothing_to_score_message, scan

H, W = 16, 8  # tiny person-shaped images (height, width), like Market's 128×64
MARKET = [
    ("0002_c1s1_000451_03.jpg", "0002_c3s1_000551_01.jpg"),
    ("0002_c3s1_000551_01.jpg", "0002_c1s1_000451_03.jpg"),  # the reverse pair is another pair
    ("0007_c2s3_070952_01.jpg", "0007_c6s3_094992_01.jpg"),
]
FASHION = [
    ("fashionWOMENDressesid0000004701_2side.jpg", "fashionWOMENDressesid0000004701_1front.jpg"),
    ("fashionMENDenimid0000008001_1front.jpg", "fashionMENDenimid0000008001_7additional.jpg"),
]
# name forms: PATN, PATN without extensions, GFLA/DPTN/PIDM, the same with extensions, PCDMs, Deformable GAN
FORMS = {
    "patn": "{a}.jpg___{b}.jpg_vis",
    "triple-underscore": "{a}___{b}",
    "gfla": "{a}_2_{b}_vis",
    "gfla-with-ext": "{a}.jpg_2_{b}.jpg_vis",
    "pcdms": "{a}_to_{b}",
    "deformable-gan": "{a}.jpg_{b}.jpg",
}


def picture(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """Flat colour blocks: distinct per seed and nearly unchanged by JPEG, so loads can be compared."""
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w, 3), np.uint8)
    for y in range(0, h, 8):
        for x in range(0, w, 8):
            image[y : y + 8, x : x + 8] = rng.integers(0, 256, 3)
    return image


def save(path, image: np.ndarray):
    options = {"quality": 95, "subsampling": 0} if path.suffix == ".jpg" else {}  # 4:4:4 keeps 8×8 blocks flat
    Image.fromarray(image).save(path, **options)
    return path


def stem(name: str) -> str:
    return name[: -len(".jpg")]


def same(loaded: np.ndarray, image: np.ndarray, ext: str) -> bool:
    if loaded.shape != image.shape or loaded.dtype != np.uint8:
        return False
    tolerance = 0 if ext == ".png" else 2  # JPEG rounds the flat 8×8 blocks' colours
    return int(np.abs(loaded.astype(int) - image).max()) <= tolerance


def write_files(folder, pairs, form: str, ext: str, make=picture) -> dict[tuple[str, str], np.ndarray]:
    folder.mkdir(exist_ok=True)
    put = {}
    for i, (a, b) in enumerate(pairs):
        put[a, b] = make(i)
        save(folder / (FORMS[form].format(a=stem(a), b=stem(b)) + ext), put[a, b])
    return put


@pytest.mark.parametrize("ext", [".png", ".jpg"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("pairs", [MARKET, FASHION], ids=["market", "deepfashion"])
def test_every_naming_form_round_trips(tmp_path, pairs, form, ext):
    put = write_files(tmp_path / "gen", pairs, form, ext)
    result = scan(tmp_path / "gen", pairs, tile_size=(H, W))
    assert result.layout == "files" and result.how.startswith("detected files")
    assert result.problems == []
    assert [(it.from_name, it.to_name) for it in result.items] == pairs
    assert [it.pair_index for it in result.items] == list(range(len(pairs)))
    assert all(same(it.load(), put[it.from_name, it.to_name], ext) for it in result.items)
    assert result.items[0].load().flags.writeable  # torch.from_numpy takes it without a warning
    forced = scan(tmp_path / "gen", pairs, layout="files")
    assert forced.how == "forced by --layout files" and forced.items == result.items


@pytest.mark.parametrize("dataset", ["market", "fashion"])
def test_standard_pairs_parse_in_every_form(tmp_path, dataset):
    """Against the whole standard test list (Market names hold underscores and a few are ``*.jpg.jpg``;
    DeepFashion's hold ``_2side``-like parts): every form names its own pair and no other."""
    table = standard_file(f"{dataset}_pairs_test")
    pairs = list(zip(table["from"].to_pylist(), table["to"].to_pylist()))
    some = sorted({i for i, (a, b) in enumerate(pairs) if ".jpg.jpg" in a + b} | set(range(0, len(pairs), 101)))
    for form in FORMS:
        folder = tmp_path / form
        folder.mkdir()
        for i in some:
            (folder / (FORMS[form].format(a=stem(pairs[i][0]), b=stem(pairs[i][1])) + ".png")).touch()
        result = scan(folder, pairs, layout="files")  # reads no header: empty files do
        assert [it.pair_index for it in result.items] == some, form
        assert {p.kind for p in result.problems} == {"missing"} and len(result.problems) == len(pairs) - len(some)


def test_expected_names_without_extension_and_upper_case_extensions(tmp_path):
    pairs = [(stem(a), stem(b)) for a, b in MARKET]  # e.g. a --pairs CSV without extensions
    folder = tmp_path / "gen"
    folder.mkdir()
    for i, (a, b) in enumerate(pairs):
        save(folder / f"{a}.jpg___{b}.jpg_vis.png", picture(i)).rename(folder / f"{a}.JPG___{b}.Jpg_vis.PNG")
    result = scan(folder, pairs)
    assert result.problems == [] and [(it.from_name, it.to_name) for it in result.items] == pairs


def write_strips(folder, pairs, order: list[str], name: str, ext: str = ".png", tile_w: int = W) -> dict:
    """Strips with one picture per tile; returns {pair: {tile name: picture}}."""
    folder.mkdir(exist_ok=True)
    put = {}
    for i, (a, b) in enumerate(pairs):
        tiles = {t: picture(10 * i + j, H, tile_w) for j, t in enumerate(order)}
        put[a, b] = tiles
        save(folder / (name.format(a=stem(a), b=stem(b)) + ext), np.concatenate([tiles[t] for t in order], axis=1))
    return put


STRIPS = {  # lineage: (tile order, name form, tile index by default)
    "patn": (["P1", "BP1", "P2", "BP2", "gen"], "{a}.jpg___{b}.jpg_vis", 4),
    "deformable-gan": (["P1", "P2", "gen"], "{a}.jpg_{b}.jpg", 2),
    "gfla-all": (["P1", "gen", "P2"], "{a}_2_{b}_all", 1),
}


@pytest.mark.parametrize("ext", [".png", ".jpg"])
@pytest.mark.parametrize("lineage", STRIPS)
def test_strips_read_the_lineages_generated_tile(tmp_path, lineage, ext):
    order, name, default = STRIPS[lineage]
    put = write_strips(tmp_path / "gen", MARKET, order, name, ext)
    for tile_size in [(H, W), None]:
        result = scan(tmp_path / "gen", MARKET, tile_size=tile_size)
        assert result.layout == "strip" and result.problems == []
        assert (result.tiles, result.generated_tile) == (len(order), default)
        assert f"= {len(order)} tiles of {W} px; generated tile {default}" in result.how
        assert [(it.from_name, it.to_name) for it in result.items] == MARKET
        assert all(same(it.load(), put[it.from_name, it.to_name]["gen"], ext) for it in result.items)
        assert all(f"tile {default} of {len(order)}" in it.source for it in result.items)
    # forced: the target tile instead, by index
    forced = scan(tmp_path / "gen", MARKET, layout="strip", tiles=len(order), generated_tile=order.index("P2"))
    assert forced.how.startswith("forced by --layout strip") and "(--generated-tile)" in forced.how
    assert all(same(it.load(), put[it.from_name, it.to_name]["P2"], ext) for it in forced.items)


def test_strips_of_square_tiles_and_deepfashion_width(tmp_path):
    # GFLA's DeepFashion strips hold 256×256 tiles while the dataset images are 256×176
    put = write_strips(tmp_path / "square", FASHION, ["P1", "gen", "P2"], "{a}_2_{b}_all", tile_w=H)
    result = scan(tmp_path / "square", FASHION, tile_size=(H, 11))
    assert (result.layout, result.tiles, result.generated_tile, result.lineage) == ("strip", 3, 1, "GFLA")
    assert all(same(it.load(), put[it.from_name, it.to_name]["gen"], ".png") for it in result.items)
    # PATN's DeepFashion strips: 5 tiles of the dataset's width
    write_strips(tmp_path / "patn", FASHION, STRIPS["patn"][0], STRIPS["patn"][1], tile_w=11)
    result = scan(tmp_path / "patn", FASHION, tile_size=(H, 11))
    assert (result.layout, result.tiles, result.generated_tile, result.lineage) == ("strip", 5, 4, "PATN")


def test_csv_layout(tmp_path):
    put = write_files(tmp_path / "out", MARKET, "gfla", ".png")
    other = save(tmp_path / "elsewhere.png", picture(7))
    rows = ["from,to,generated"]
    rows += [f"{a},{b},out/{stem(a)}_2_{stem(b)}_vis.png" for a, b in MARKET[:2]]
    a, b = MARKET[2]
    rows.append(f"{stem(a)},{stem(b)},{other}")  # names without extension, absolute path
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    result = scan(tmp_path / "list.csv", MARKET)
    assert result.layout == "csv" and result.how.startswith("detected csv") and result.problems == []
    assert [(it.from_name, it.to_name) for it in result.items] == MARKET
    loaded = [it.load() for it in result.items]
    assert same(loaded[0], put[MARKET[0]], ".png") and same(loaded[2], picture(7), ".png")
    assert (
        result.items[0].source == f"{tmp_path / 'list.csv'}:2 (out/{stem(MARKET[0][0])}_2_{stem(MARKET[0][1])}_vis.png)"
    )
    assert scan(tmp_path / "list.csv", MARKET, layout="csv").how == "forced by --layout csv"


def test_csv_rows_that_cannot_be_used(tmp_path):
    write_files(tmp_path / "out", MARKET, "gfla", ".png")
    a, b = MARKET[0]
    c, d = MARKET[2]
    rows = [
        "generated,from,to",  # any column order
        f"out/{stem(a)}_2_{stem(b)}_vis.png,{a},{b}",
        f"out/{stem(a)}_2_{stem(b)}_vis.png,{a},{b}",  # the same pair again
        f"out/none.png,{c},{d}",  # no such file
        f"out/x.png,{a},{c}",  # both images known, not a pair
        f"out/x.png,{a},",  # empty target
    ]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    result = scan(tmp_path / "list.csv", MARKET)
    csv_path = tmp_path / "list.csv"
    found = {(p.kind, p.source): p.reason for p in result.problems}
    assert found[("bad", f"{csv_path}:3")] == f"duplicate of {csv_path}:2 (out/{stem(a)}_2_{stem(b)}_vis.png)"
    assert found[("bad", f"{csv_path}:4")] == "generated file out/none.png not found"
    assert found[("unmatched", f"{csv_path}:5")] == f"pair not in the expected list: {a} -> {c}"
    assert found[("unmatched", f"{csv_path}:6")] == "row lacks a from, to or generated value"
    assert found[("missing", f"{MARKET[1][0]} -> {MARKET[1][1]}")] == "no row in list.csv"
    assert len(result.problems) == 5 and [it.pair_index for it in result.items] == [0]
    (tmp_path / "bad.csv").write_text("from,target,image\n")
    with pytest.raises(
        ValueError,
        match=r"bad.csv: no column to, generated \(expected from,to,generated; found \['from', 'target', 'image'\]\)",
    ):
        scan(tmp_path / "bad.csv", MARKET)


def test_unmatched_missing_duplicate_and_non_image_files(tmp_path):
    folder = tmp_path / "gen"
    write_files(folder, MARKET[:2], "patn", ".jpg")
    a, b = MARKET[0]
    save(folder / f"{stem(a)}_2_{stem(b)}_vis.png", picture(0))  # a second file for pair 0
    save(folder / "0002_c1s1_000451_03.jpg___0007_c6s3_094992_01.jpg_vis.png", picture(1))  # not a pair
    save(folder / "0002_c1s1_000451_03.jpg___9999_c1s1_000001_01.jpg_vis.png", picture(1))  # unknown image
    save(folder / "result_0001.png", picture(2))
    (folder / "notes.txt").write_text("hello")
    (folder / ".DS_Store").write_bytes(b"\0")  # hidden: ignored
    (folder / "sub").mkdir()
    write_files(folder / "sub", MARKET[2:], "patn", ".png")  # not searched
    result = scan(folder, MARKET)
    found = {(p.kind, p.source.rsplit("/", 1)[-1]): p.reason for p in result.problems}
    assert found == {
        ("bad", f"{stem(a)}_2_{stem(b)}_vis.png"): f"duplicate of {folder / f'{a}___{b}_vis.jpg'}",
        ("unmatched", "0002_c1s1_000451_03.jpg___0007_c6s3_094992_01.jpg_vis.png"): (
            "pair not in the expected list: 0002_c1s1_000451_03 -> 0007_c6s3_094992_01"
        ),
        ("unmatched", "0002_c1s1_000451_03.jpg___9999_c1s1_000001_01.jpg_vis.png"): (
            "pair not in the expected list: 0002_c1s1_000451_03 -> 9999_c1s1_000001_01 "
            "(9999_c1s1_000001_01 in no expected pair)"
        ),
        ("unmatched", "result_0001.png"): "name not parsed: no split at ___, _2_, _to_ or .jpg_ names an expected pair",
        ("unmatched", "notes.txt"): "not an image file (.png, .jpg or .jpeg expected)",
        ("missing", f"{MARKET[2][0]} -> {MARKET[2][1]}"): "no file named for this pair",
    }
    assert next(p for p in result.problems if p.kind == "missing").pair == MARKET[2]
    assert result.how.endswith("; 1 subfolder not searched")
    assert [it.pair_index for it in result.items] == [0, 1]


def test_gfla_input_copies_and_strips_beside_results(tmp_path):
    # GFLA --save_input: _ref, _gt and the _all strip sit beside every _vis result
    folder = tmp_path / "gen"
    write_files(folder, MARKET, "gfla", ".jpg")
    a, b = MARKET[0]
    save(folder / f"{stem(a)}_2_{stem(b)}_ref.jpg", picture(0))
    save(folder / f"{stem(a)}_2_{stem(b)}_gt.jpg", picture(0))
    save(folder / f"{stem(a)}_2_{stem(b)}_all.jpg", picture(0, H, 3 * W))
    result = scan(folder, MARKET)
    assert result.layout == "files" and len(result.items) == 3
    reasons = {p.source.rsplit("_", 1)[-1]: p.reason for p in result.problems}
    assert reasons == {
        "ref.jpg": "GFLA's copy of the condition image (_ref), not a generated image",
        "gt.jpg": "GFLA's copy of the target image (_gt), not a generated image",
        "all.jpg": "a GFLA '_all' strip [condition, generated, target]; read it with --layout strip",
    }


def test_truncated_grey_and_unreadable_files_are_bad(tmp_path):
    folder = tmp_path / "gen"
    write_files(folder, MARKET, "patn", ".jpg")
    names = sorted(p.name for p in folder.iterdir())
    noise = np.random.default_rng(0).integers(0, 256, (64, 32, 3), dtype=np.uint8)
    data = save(folder / names[0], noise).read_bytes()
    (folder / names[0]).write_bytes(data[: len(data) * 2 // 3])  # header intact, scan data cut
    Image.fromarray(picture(1)[..., 0]).save(folder / names[1])  # greyscale
    (folder / names[2]).write_bytes(b"not a jpeg at all")
    forced = scan(folder, MARKET, layout="files")  # reads no headers: every file is an item
    assert len(forced.items) == 3 and forced.problems == []
    errors = {}
    for item in forced.items:
        with pytest.raises(BadImage) as info:
            item.load()
        errors[item.path.name] = str(info.value)
    assert "truncated" in errors[names[0]]
    assert errors[names[1]] == "not an RGB image (mode L)"
    assert errors[names[2]].startswith("unreadable image: cannot identify image file")
    # auto reads the headers: the grey and unreadable files are bad already; the truncated one fails at load
    result = scan(folder, MARKET)
    bad = {p.source.rsplit("/", 1)[-1]: p.reason for p in result.problems if p.kind == "bad"}
    assert bad[names[1]] == "not an RGB image (mode L)" and bad[names[2]].startswith("unreadable image")
    assert [it.path.name for it in result.items] == [names[0]] and len(result.problems) == 2


def test_strip_whose_width_is_not_n_tiles(tmp_path):
    folder = tmp_path / "gen"
    write_strips(folder, MARKET, STRIPS["patn"][0], STRIPS["patn"][1])
    a, b = MARKET[1]
    save(folder / f"{a}___{b}_vis.png", picture(0, H, 5 * W + 3))  # replaces pair 1's strip
    c, d = MARKET[2]
    save(folder / f"{c}___{d}_vis.png", picture(0, H, 5 * (W + 2)))  # 5 tiles, of another width
    result = scan(folder, MARKET, layout="strip")
    bad = {p.pair: p.reason for p in result.problems}
    assert bad == {
        MARKET[1]: f"strip {5 * W + 3} px wide does not divide into 5 equal tiles",
        MARKET[2]: f"strip {5 * (W + 2)} px wide is not 5 tiles of {W} px",
    }
    assert all(p.kind == "bad" for p in result.problems) and len(result.items) == 1
    # a file that changed after the scan is caught at load
    item = result.items[0]
    save(item.path, picture(0, H, 5 * W + 1))
    with pytest.raises(BadImage, match=f"strip {5 * W + 1} px wide does not divide into 5 equal tiles"):
        item.load()


def test_ambiguous_names_are_not_guessed(tmp_path):
    pairs = [("p_2_q.jpg", "r.jpg"), ("p.jpg", "q_2_r.jpg")]
    folder = tmp_path / "gen"
    folder.mkdir()
    save(folder / "p_2_q_2_r.png", picture(0))
    result = scan(folder, pairs)
    assert result.items == []
    assert result.problems[0].reason == "name not parsed: ambiguous, it names p_2_q.jpg -> r.jpg or p.jpg -> q_2_r.jpg"


def test_nothing_to_score_names_the_folder_and_layout(tmp_path):
    folder = tmp_path / "outputs"
    write_files(folder, MARKET, "gfla", ".png")
    result = scan(folder, FASHION)
    assert result.items == [] and len(result.of_kind("missing")) == 2
    error = nothing_to_score_message(folder, result)
    assert "\n" not in error
    assert str(error).startswith(f"nothing to score in {folder} (detected files: 3 images {H}×{W}")
    assert "the files layout expects one image per pair named <from>___<to>" in str(error)
    assert "0 of 2 expected pairs found (3 unmatched, 0 bad, 2 missing); e.g." in str(error)
    empty = tmp_path / "empty"
    empty.mkdir()
    error = nothing_to_score_message(empty, scan(empty, MARKET, layout="strip", tiles=5))
    assert str(error).startswith(f"nothing to score in {empty} (forced by --layout strip")
    assert "the strip layout expects strips of 5 tiles" in str(error)


def test_options_that_cannot_apply(tmp_path):
    folder = tmp_path / "gen"
    write_strips(folder, MARKET, ["a", "b", "c", "d"], "{a}___{b}")
    with pytest.raises(ValueError, match="no known generated tile for 4-tile strips"):
        scan(folder, MARKET, layout="strip", tiles=4)
    assert scan(folder, MARKET, tiles=4, generated_tile=3).layout == "strip"  # auto with --tiles
    with pytest.raises(ValueError, match="--generated-tile 4 is not a tile of 4 tiles"):
        scan(folder, MARKET, tiles=4, generated_tile=4)
    with pytest.raises(ValueError, match="apply to the strip layout, not files"):
        scan(folder, MARKET, layout="files", tiles=4)
    with pytest.raises(ValueError, match="unknown layout 'tiles'"):
        scan(folder, MARKET, layout="tiles")
    with pytest.raises(ValueError, match="the same pair"):
        scan(folder, [MARKET[0], (stem(MARKET[0][0]), MARKET[0][1])])
    with pytest.raises(FileNotFoundError, match="no such folder"):
        scan(tmp_path / "absent", MARKET)
    with pytest.raises(ValueError, match="csv layout reads a .csv file"):
        scan(folder, MARKET, layout="csv")
