import pytest

from pg2_pipeline.data.names import (
    BadNameError,
    fashion_flat_to_path,
    fashion_path_to_flat,
    parse_fashion_flat,
    parse_market_name,
    person_id_of,
)


def test_market_name_fields():
    n = parse_market_name("0002_c1s1_000451_03.jpg")
    assert (n.person_id, n.camera, n.sequence, n.frame, n.box) == ("0002", 1, 1, 451, 3)
    assert not n.is_excluded


@pytest.mark.parametrize("name, pid", [("-1_c3s2_009478_01.jpg", "-1"), ("0000_c1s3_022226_03.jpg", "0000")])
def test_market_distractors_and_junk_are_excluded(name, pid):
    n = parse_market_name(name)
    assert n.person_id == pid and n.is_excluded


@pytest.mark.parametrize(
    "name",
    ["2_c1s1_000451_03.jpg", "0002_c1s1_000451.jpg", "0002_c1s1_000451_03.png", "Thumbs.db", "0002_c7s1_000451_03.JPG"],
)
def test_bad_market_names_raise_with_the_name(name):
    with pytest.raises(BadNameError, match=name.replace(".", r"\.")):
        parse_market_name(name)


def test_deepfashion_path_and_flat_name_round_trip():
    path = "img/MEN/Denim/id_00000080/01_1_front.jpg"
    flat = "fashionMENDenimid0000008001_1front.jpg"
    assert fashion_path_to_flat(path) == flat
    assert fashion_flat_to_path(flat) == path
    # category underscores are kept both ways
    flat2 = "fashionWOMENBlouses_Shirtsid0000337203_3back.jpg"
    assert fashion_flat_to_path(flat2) == "img/WOMEN/Blouses_Shirts/id_00003372/03_3_back.jpg"
    assert fashion_path_to_flat(fashion_flat_to_path(flat2)) == flat2
    n = parse_fashion_flat(flat2)
    assert (n.person_id, n.view, n.pose, n.item) == ("fashionWOMENBlouses_Shirtsid00003372", "back", 3, "03")


def test_deepfashion_identity_is_the_prefix_up_to_the_id():
    a = person_id_of("deepfashion", "fashionWOMENBlouses_Shirtsid0000337203_3back.jpg")
    b = person_id_of("deepfashion", "fashionWOMENBlouses_Shirtsid0000337201_1front.jpg")
    assert a == b == "fashionWOMENBlouses_Shirtsid00003372"
    assert person_id_of("market", "0002_c1s1_000451_03.jpg") == "0002"


@pytest.mark.parametrize(
    "bad",
    [
        "img/MEN/Denim/00000080/01_1_front.jpg",
        "img/KIDS/Denim/id_00000080/01_1_front.jpg",
        "fashionMENDenim01_1front.jpg",
    ],
)
def test_bad_deepfashion_names_raise(bad):
    with pytest.raises(BadNameError):
        (fashion_path_to_flat if bad.startswith("img/") else fashion_flat_to_path)(bad)
