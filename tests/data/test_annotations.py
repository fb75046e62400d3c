import numpy as np
import pytest

from pg2_pipeline.data.annotations import (
    AnnotationFormatError,
    keypoints_array,
    read_annotation_file,
    read_pairs_file,
    standard_file,
)
from pg2_pipeline.skeleton import visible

HEADER = "name:keypoints_y:keypoints_x\n"
ROW = "0002_c1s1_000451_03.jpg: [9, 25, 25, 47, 62, 24, 44, 63, 62, 86, 109, 63, 87, 108, -1, 6, -1, 8]: [18, 32, 24, 24, 18, 40, 41, 38, 26, 31, 43, 34, 24, 47, -1, 21, -1, 31]\n"  # noqa: E501
MISSING = "0000_c1s3_022226_03.jpg: [" + ", ".join(["-1"] * 18) + "]: [" + ", ".join(["-1"] * 18) + "]\n"


def test_parse_rows_including_an_all_missing_row(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text(HEADER + ROW + MISSING)
    table = read_annotation_file(f)
    assert table.column("name").to_pylist() == ["0002_c1s1_000451_03.jpg", "0000_c1s3_022226_03.jpg"]
    kp = keypoints_array(table)
    assert kp.shape == (2, 18, 2)
    assert kp[0, 0].tolist() == [9, 18]  # (y, x) of the nose
    assert visible(kp[0]).sum() == 16
    assert not visible(kp[1]).any()
    assert (kp[1] == -1).all()


@pytest.mark.parametrize(
    "bad_line, message",
    [
        (
            "0003_c1s1_000451_03.jpg: [1, 2, 3]: [" + ", ".join(["1"] * 18) + "]\n",
            "keypoints_y has 3 values, expected 18",
        ),
        ("0003_c1s1_000451_03.jpg [1]\n", "expected 'NAME"),
        ("0003_c1s1_000451_03.jpg: [" + ", ".join(["a"] * 18) + "]: [" + ", ".join(["1"] * 18) + "]\n", "non-integer"),
        ("0003_c1s1_000451_03.jpg: [" + ", ".join(["-5"] * 18) + "]: [" + ", ".join(["1"] * 18) + "]\n", "below -1"),
        (ROW, "already given on line 2"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, bad_line, message):
    f = tmp_path / "bad.csv"
    f.write_text(HEADER + ROW + bad_line)
    with pytest.raises(AnnotationFormatError) as err:
        read_annotation_file(f)
    assert f"{f}:3:" in str(err.value)
    assert message in str(err.value)


def test_wrong_header_is_refused(tmp_path):
    f = tmp_path / "h.csv"
    f.write_text("name,y,x\n" + ROW)
    with pytest.raises(AnnotationFormatError, match=":1: expected the header"):
        read_annotation_file(f)


def test_pairs_file(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("from,to\na.jpg,b.jpg\nc.jpg,d.jpg\n")
    assert read_pairs_file(f).to_pylist() == [{"from": "a.jpg", "to": "b.jpg"}, {"from": "c.jpg", "to": "d.jpg"}]
    f.write_text("from,to\na.jpg\n")
    with pytest.raises(AnnotationFormatError, match=":2:"):
        read_pairs_file(f)


@pytest.mark.parametrize(
    "stem, rows, source",
    [
        ("market_annotation_train", 12936, "market-annotation-train.csv"),
        ("market_annotation_test", 19732, "market-annotation-test.csv"),
        ("market_pairs_test", 12000, "market-pairs-test.csv"),
        ("fashion_annotation_test", 4038, "fasion-annotation-test.csv"),
        ("fashion_pairs_test", 8570, "fashion-pairs-test.csv"),
    ],
)
def test_packaged_standard_files(stem, rows, source):
    table = standard_file(stem)
    assert table.num_rows == rows
    meta = table.schema.metadata
    assert meta[b"source_file"].decode() == source
    assert len(meta[b"source_sha256"]) == 64


def test_packaged_annotations_fit_the_image_sizes():
    market = keypoints_array(standard_file("market_annotation_train"))
    vis = visible(market)
    assert market[..., 0][vis].max() <= 127 and market[..., 1][vis].max() <= 63
    fashion = keypoints_array(standard_file("fashion_annotation_test"))
    assert fashion[visible(fashion)].max() <= 255
    # every test pair refers to annotated test images
    names = set(standard_file("market_annotation_test").column("name").to_pylist())
    pairs = standard_file("market_pairs_test")
    assert set(pairs.column("from").to_pylist()) <= names and set(pairs.column("to").to_pylist()) <= names
    assert np.isin(market, [-1]).any()
