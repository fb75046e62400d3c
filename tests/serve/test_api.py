"""The page's JSON API over HTTP (uvicorn in a thread, the tiny registered model): the good paths give
what PoseTransfer and the PG² object give, and every kind of bad input gets a 4xx and one clear line
while the server keeps serving."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
from serve_fixtures import MODEL, free_port, get_json, post_form, served_project  # noqa: F401 (a fixture)

from pg2_pipeline.config import load_params
from pg2_pipeline.inference import PoseTransfer, read_image
from pg2_pipeline.models.pg2 import PG2
from pg2_pipeline.serve.app import MAX_UPLOAD_BYTES, Models, Service, create_app
from pg2_pipeline.serve.gallery import Gallery
from pg2_pipeline.tracking import tracking_uri, use_tracking_uri


@pytest.fixture(scope="module")
def api(served_project):  # noqa: F811
    """The app in this process on a free 127.0.0.1 port; stopped after the module."""
    import uvicorn

    root = served_project
    use_tracking_uri(tracking_uri(load_params(root / "params.yaml"), root))
    transfer = PoseTransfer(MODEL)
    gallery = Gallery.from_project(root)
    app = create_app(Service(Models(MODEL, transfer), gallery))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.config.port}", transfer, gallery, root
    server.should_exit = True
    thread.join(timeout=30)


def decode(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    image = cv2.imdecode(np.frombuffer(base64.b64decode(data_url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def gallery_pose(gallery: Gallery, k: int = 0) -> str:
    entry = gallery.get(gallery.poses[k])
    return json.dumps({"size": list(entry.size), "keypoints": entry.keypoints.tolist()})


def test_a_dataset_image_and_a_pose_give_what_the_model_gives(api):
    url, transfer, gallery, _ = api
    person = gallery.get(gallery.people[0])
    status, body = post_form(f"{url}/api/generate", {"image_id": person.image_id, "pose": gallery_pose(gallery)})
    assert status == 200, body
    assert body["model"] == MODEL and body["version"] == int(transfer.card.version) and body["size"] == [128, 64]
    assert body["card"]["tags"]["data"] == "twin" and "synthetic people only" in body["card"]["caveat"]
    condition, g1, pg2 = (decode(body[k]) for k in ("condition", "g1", "pg2"))
    assert condition.shape == g1.shape == pg2.shape == (128, 64, 3)
    assert np.array_equal(condition, read_image(person.path))  # a dataset image is used as it is
    target = np.array(body["keypoints_target"], np.float32)
    assert np.allclose(target, gallery.get(gallery.poses[0]).keypoints, atol=0.01)  # same frame: unchanged
    assert np.allclose(body["keypoints_condition"], person.keypoints, atol=0.01)
    # one inference path: PG² is exactly what the registered MLflow model predicts, G1 what the
    # PG² object's stage 1 alone gives
    expected = transfer.model.predict({"condition": condition[None], "target_keypoints": target[None]})[0]
    assert np.array_equal(pg2, expected)
    assert np.array_equal(g1, PG2(transfer.pg2.g1).generate(condition[None], target[None])[0])


def test_photos_are_cropped_like_pg2_generate(api):
    url, transfer, _, root = api
    photo = (root / "photos/astronaut.png").read_bytes()
    status, body = post_form(
        f"{url}/api/generate", {"image": ("astronaut.png", photo), "pose_image": ("astronaut.png", photo)}
    )
    assert status == 200, body
    expected = transfer.generate(root / "photos/astronaut.png", pose_from=root / "photos/astronaut.png")
    assert np.array_equal(decode(body["pg2"]), expected)
    assert body["keypoints_condition"] == body["keypoints_target"]  # the same photo for both
    assert sum(y >= 0 for y, _ in body["keypoints_target"]) >= 4


def test_models_gallery_images_and_page(api):
    url, transfer, gallery, _ = api
    status, models = get_json(f"{url}/api/models")
    assert status == 200 and models["default"] == MODEL
    labels = [c["label"] for c in models["choices"]]
    assert labels[0] == f"@champion (v{transfer.card.version})" and f"v{transfer.card.version}" in labels
    card = models["choices"][0]["card"]
    assert card["tags"]["profile"] == "tiny" and card["tags"]["stage1.steps"] == "400"
    assert card["trained_on"].startswith("trained on the synthetic twin of Market-1501 (tiny profile; G1 400 steps")
    status, listed = get_json(f"{url}/api/gallery")
    assert status == 200 and len(listed["people"]) == len(gallery.people) > 0 and listed["poses"]
    assert not set(gallery.people) & set(gallery.poses)  # a person and a pose are different images
    with urllib.request.urlopen(f"{url}{listed['people'][0]['url']}", timeout=30) as response:
        assert response.headers["Content-Type"] == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(response.read(), np.uint8), cv2.IMREAD_COLOR).shape == (128, 64, 3)
    status, info = get_json(f"{url}/api/info")
    assert status == 200 and len(info["joints"]) == 18 and info["size"] == [128, 64]
    with urllib.request.urlopen(f"{url}/", timeout=30) as response:
        page = response.read().decode()
        assert "skeleton editor" in page and "default-src 'self'" in response.headers["Content-Security-Policy"]


def standing(n_joints: int) -> str:
    keypoints = [[20.0 + 5 * k, 32.0] if k < n_joints else [-1, -1] for k in range(18)]
    return json.dumps({"size": [128, 64], "keypoints": keypoints})


@pytest.mark.parametrize(
    "fields, status, message",
    [
        ({"image": ("notes.txt", "PHOTO:notes.txt")}, 400, "image (notes.txt): cannot read the image"),
        ({"image": ("empty.png", b"")}, 400, "image (empty.png): the file is empty"),
        ({"image": ("big.png", b"\0" * (MAX_UPLOAD_BYTES + 1))}, 413, "larger than the 10 MB upload limit"),
        ({"image": ("wall.png", "PHOTO:wall.png")}, 422, "image (wall.png): no person found"),
        ({"pose": standing(3)}, 400, "pose: only 3 joints are given; a pose needs at least 4"),
        ({"pose": '{"keypoints": [[1, 2]'}, 400, "pose: not a JSON pose file"),
        ({"pose": '{"points": []}'}, 400, "pose: expected an object with 'keypoints'"),
        ({"pose_image": ("wall.png", "PHOTO:wall.png")}, 422, "pose_image (wall.png): no person found"),
        ({"model": "models:/pg2-generator@gold"}, 404, "unknown model models:/pg2-generator@gold"),
        ({"model": "models:/no-such-model/1"}, 404, "unknown model models:/no-such-model/1"),
        ({"model": "/etc"}, 400, "'model' must be models:/<name>@<alias>"),
        ({"model": "runs:/abc/generator"}, 400, "'model' must be models:/<name>@<alias>"),
        ({"image_id": "../../params.yaml"}, 404, "unknown image_id '../../params.yaml'"),
        ({"image_id": "IMAGE_ID", "image": ("astronaut.png", "PHOTO:astronaut.png")}, 400, "exactly one"),
        ({"pose": None}, 400, "give the target pose as 'pose' (pose JSON) or 'pose_image' (a photo)"),
        ({"colour": "red"}, 400, "unknown field 'colour'"),
    ],
)
def test_bad_input_gets_a_4xx_and_one_line(api, fields, status, message):
    url, _, gallery, root = api
    form = {"image_id": gallery.people[0], "pose": gallery_pose(gallery)}
    if "image" in fields:
        del form["image_id"]
    if "pose_image" in fields:
        del form["pose"]
    for name, value in fields.items():
        if value is None:
            del form[name]
            continue
        if value == "IMAGE_ID":
            value = gallery.people[0]
        if isinstance(value, tuple) and isinstance(value[1], str) and value[1].startswith("PHOTO:"):
            value = (value[0], (root / "photos" / value[1][6:]).read_bytes())
        form[name] = value
    got, body = post_form(f"{url}/api/generate", form)
    assert (got, list(body)) == (status, ["error"]) and message in body["error"] and "\n" not in body["error"], body
    # the server keeps serving
    assert post_form(f"{url}/api/generate", {"image_id": gallery.people[1], "pose": gallery_pose(gallery, 1)})[0] == 200


def test_a_huge_image_is_refused_before_it_is_decoded(api):
    url, _, gallery, _ = api
    bomb = cv2.imencode(".png", np.zeros((8000, 6000), np.uint8))[1].tobytes()  # 48 megapixels in ~50 kB
    assert len(bomb) < MAX_UPLOAD_BYTES
    status, body = post_form(f"{url}/api/generate", {"image": ("bomb.png", bomb), "pose": gallery_pose(gallery)})
    assert status == 400 and body["error"].startswith(
        "image (bomb.png): 6000x8000 pixels is more than the 40 megapixels"
    )


def test_not_a_form_and_unknown_paths(api):
    url = api[0]
    request = urllib.request.Request(f"{url}/api/generate", data=b"a=1", method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    assert info.value.code == 415 and "multipart/form-data" in json.loads(info.value.read())["error"]
    for path in ("/api/images/..%2F..%2Fparams.yaml", "/api/images/unknown.jpg", "/params.yaml", "/static/app.js"):
        status, body = get_json(f"{url}{path}")
        assert status == 404 and "error" in body, path
