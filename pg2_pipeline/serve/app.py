"""The page's server: a Starlette app whose endpoints call :class:`~pg2_pipeline.inference.PoseTransfer`.

    GET  /                  the page (static/index.html, app.js, style.css)
    GET  /api/info          joints, bones and colours of the skeleton, limits
    GET  /api/models        the registered versions and aliases to switch between, with their tags
    GET  /api/gallery       test images (people) and test poses of the dataset
    GET  /api/images/<id>   a gallery image, looked up in the image index
    POST /api/generate      multipart: image | image_id, pose | pose_image, [model] -> JSON

Bad input is answered with a 4xx status and ``{"error": "<one line>"}``. Why Starlette and a
hand-written page rather than Gradio: the skeleton editor (18 draggable joints over the frame) is a
custom canvas either way, Starlette and uvicorn are already installed with MLflow, and Gradio would
add dozens of packages and a front end that fetches from the internet by default.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from pg2_pipeline.inference import (
    InferenceError,
    ModelNotFoundError,
    NoPersonError,
    PoseTransfer,
    decode_image,
    parse_pose,
    read_image,
)
from pg2_pipeline.model_card import REGISTERED_URI, ModelCard, describe_model, registered_versions
from pg2_pipeline.serve.forms import FormError, Part, parse_form, read_body
from pg2_pipeline.serve.gallery import Gallery

MAX_UPLOAD_BYTES = 10 * 2**20  # the whole request: two photos and a pose
DRAIN_LIMIT = 64 * 2**20  # past this an oversized request is cut off instead of read to its end
KEEP_MODELS = 3  # loaded generators kept for switching back and forth
FIELDS = ("image", "image_id", "pose", "pose_image", "model")
STATIC = Path(__file__).resolve().parent / "static"
PAGES = {  # the only files the server reads on a client's behalf, named here, read once
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
# Everything comes from this server; nothing is fetched from the internet.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'"
)


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Models:
    """Loaded generators by registry version, least recently used first. An alias is resolved on
    every request, so a ``@champion`` moved by a new evaluation is followed without a restart, and
    a page started before any model was registered works once one is."""

    def __init__(self, default_uri: str, loaded: PoseTransfer | None = None):
        self.default_uri = default_uri
        self._loaded: OrderedDict[str, PoseTransfer] = OrderedDict()
        if loaded is not None:
            self._loaded[self._key(loaded.card)] = loaded

    @staticmethod
    def _key(card: ModelCard) -> str:
        return card.version_uri or card.uri

    def describe(self, uri: str | None) -> ModelCard:
        uri = uri or self.default_uri
        if REGISTERED_URI.match(uri) is None:
            if uri != self.default_uri:
                raise ApiError(
                    400, f"'model' must be models:/<name>@<alias> or models:/<name>/<version>, got '{uri[:100]}'"
                )
            return self._load(uri).card  # a runs:/ URI or a folder given on the command line
        from mlflow.exceptions import MlflowException

        try:
            return describe_model(uri)
        except MlflowException as exc:
            reason = exc.message.splitlines()[0]
            if uri == self.default_uri:
                raise ApiError(
                    503, f"no model to serve yet: {uri}: {reason} (run `make demo`, or materialize the evaluation)"
                ) from None
            raise ApiError(404, f"unknown model {uri}: {reason}") from None

    def _load(self, key: str) -> PoseTransfer:
        if key not in self._loaded:
            try:
                self._loaded[key] = PoseTransfer(key)
            except ModelNotFoundError as exc:
                raise ApiError(404, str(exc)) from None
            if len(self._loaded) > KEEP_MODELS:
                self._loaded.popitem(last=False)[1].close()
        self._loaded.move_to_end(key)
        return self._loaded[key]

    def get(self, uri: str | None) -> tuple[PoseTransfer, ModelCard]:
        card = self.describe(uri)
        return self._load(self._key(card)), card

    def choices(self) -> list[dict]:
        """The aliases, then every version, newest first; the default model alone when it is not
        a registered one."""
        try:
            card = self.describe(None)
        except ApiError:
            return []
        if card.name is None:
            return [{"uri": card.uri, "label": card.uri, "card": card.to_dict()}]
        versions = registered_versions(card.name)
        aliases = sorted((a, v) for v in versions for a in v.aliases)
        out = [
            {"uri": f"models:/{v.name}@{a}", "label": f"@{a} (v{v.version})", "card": v.to_dict()} for a, v in aliases
        ]
        out += [{"uri": v.version_uri, "label": f"v{v.version}", "card": v.to_dict()} for v in versions]
        return out


def png_data_url(image: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("could not encode a PNG")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _keypoints(yx: np.ndarray | None) -> list | None:
    return None if yx is None else np.round(np.asarray(yx, np.float64), 2).tolist()


def _label(part: Part) -> str:
    """How an upload is named in errors: the field and, when given, the file's name."""
    name = (part.filename or "").replace("\n", " ")[:80]
    return f"{part.name} ({name})" if name else part.name


class Service:
    """The API's work, outside any web framework: fields in, JSON-able dict out."""

    def __init__(self, models: Models, gallery: Gallery):
        self.models, self.gallery = models, gallery
        # One request at a time: a model and its BlazePose graph are not thread-safe, and on a
        # few cores concurrent forwards would only slow each other down.
        self.lock = threading.Lock()

    def generate(self, fields: dict[str, Part]) -> dict:
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown:
            raise ApiError(400, f"unknown field '{unknown[0]}' (expected {', '.join(FIELDS)})")
        if ("image" in fields) == ("image_id" in fields):
            raise ApiError(400, "give the person as 'image' (a photo) or 'image_id' (a dataset image): exactly one")
        if ("pose" in fields) == ("pose_image" in fields):
            raise ApiError(400, "give the target pose as 'pose' (pose JSON) or 'pose_image' (a photo): exactly one")
        model = fields["model"].text().strip() if "model" in fields else None
        start = time.perf_counter()
        with self.lock:
            transfer, card = self.models.get(model or None)
            try:
                result = self._transfer(transfer, fields)
            except NoPersonError as exc:
                raise ApiError(422, str(exc)) from None
            except InferenceError as exc:
                raise ApiError(400, str(exc)) from None
        return {
            "model": card.uri,
            "version": card.to_dict()["version"],
            "card": card.to_dict(),
            "size": list(transfer.size),
            "keypoints_condition": _keypoints(result.condition_keypoints),
            "keypoints_target": _keypoints(result.target_keypoints),
            "condition": png_data_url(result.condition),
            "g1": png_data_url(result.g1),
            "pg2": png_data_url(result.pg2) if result.pg2 is not None else None,
            "seconds": round(time.perf_counter() - start, 4),
        }

    def _transfer(self, transfer: PoseTransfer, fields: dict[str, Part]):
        known = None
        if "image_id" in fields:
            image_id = fields["image_id"].text().strip()
            entry = self.gallery.get(image_id)
            if entry is None:
                raise ApiError(404, f"unknown image_id '{image_id[:100]}': not a test image of the dataset index")
            image, source, known = read_image(entry.path), f"image_id {image_id}", entry.keypoints
        else:
            source = _label(fields["image"])
            image = decode_image(fields["image"].data, source)
        pose = pose_from = None
        if "pose" in fields:
            pose_source = "pose"
            pose = parse_pose(fields["pose"].data, transfer.size, pose_source)
        else:
            pose_source = _label(fields["pose_image"])
            pose_from = decode_image(fields["pose_image"].data, pose_source)
        return transfer.transfer(image, pose, pose_from, condition_keypoints=known, sources=(source, pose_source))


def create_app(service: Service):
    """The Starlette app over ``service``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from pg2_pipeline.inference import MIN_POSE_JOINTS
    from pg2_pipeline.pose.draw import BONES, joint_colours
    from pg2_pipeline.skeleton import JOINT_NAMES

    pages = {route: ((STATIC / name).read_bytes(), media) for route, (name, media) in PAGES.items()}
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    async def page(request):
        body, media = pages[request.url.path]
        return Response(body, media_type=media, headers=headers)

    def _size():
        with service.lock:
            try:
                return list(service.models.get(None)[0].size), None
            except ApiError as exc:
                return None, str(exc)

    async def info(request):
        size, model_error = await run_in_threadpool(_size)
        return JSONResponse(
            {
                "joints": list(JOINT_NAMES),
                "bones": [list(b) for b in BONES],
                "colours": joint_colours().tolist(),
                "size": size,
                "model_error": model_error,
                "max_upload_bytes": MAX_UPLOAD_BYTES,
                "min_pose_joints": MIN_POSE_JOINTS,
            },
            headers=headers,
        )

    def _models():
        with service.lock:
            return {"default": service.models.default_uri, "choices": service.models.choices()}

    async def models(request):
        return JSONResponse(await run_in_threadpool(_models), headers=headers)

    async def gallery(request):
        return JSONResponse(service.gallery.to_dict(), headers=headers)

    async def image(request):
        entry = service.gallery.get(request.path_params["image_id"])
        if entry is None:
            return error(404, "unknown image_id: not a test image of the dataset index")
        media = "image/png" if entry.path.suffix.lower() == ".png" else "image/jpeg"
        return Response(await run_in_threadpool(entry.path.read_bytes), media_type=media, headers=headers)

    async def generate(request):
        body = await read_body(request, MAX_UPLOAD_BYTES, DRAIN_LIMIT)
        fields = parse_form(request.headers.get("content-type", ""), body)
        return JSONResponse(await run_in_threadpool(service.generate, fields), headers=headers)

    async def api_error(request, exc):
        return error(exc.status, str(exc))

    async def http_error(request, exc):
        return error(exc.status_code, exc.detail if isinstance(exc.detail, str) else "error")

    async def internal_error(request, exc):
        # logged in full by uvicorn; the client gets one line and the server keeps serving
        return error(500, f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    routes = [Route(path, page) for path in PAGES] + [
        Route("/api/info", info),
        Route("/api/models", models),
        Route("/api/gallery", gallery),
        Route("/api/images/{image_id:str}", image),
        Route("/api/generate", generate, methods=["POST"]),
    ]
    handlers = {ApiError: api_error, FormError: api_error, HTTPException: http_error, Exception: internal_error}
    return Starlette(routes=routes, exception_handlers=handlers)


def serve(
    model_uri: str,
    host: str,
    port: int,
    tracking_uri: str | None,
    project_root: Path | None,
    *,
    required: bool,
    threads: int = 1,
) -> int:
    """``pg2 serve``: loads the model, then serves until Ctrl-C or SIGTERM. A model that cannot be
    loaded is an error (exit 2) when it was ``required`` (named by the user); otherwise (the
    project's default, before ``make demo``) the page starts and says so. ``threads``: torch's
    compute threads. One by default: a 128x64 forward gains little from a second one, and on a
    busy machine (a training run beside ``make ui``) two threads that wait on each other made it
    8x slower (bench/bench_serve.py)."""
    import sys

    import uvicorn

    from pg2_pipeline.runtime import set_threads
    from pg2_pipeline.tracking import use_tracking_uri

    set_threads(threads)
    if tracking_uri:
        use_tracking_uri(tracking_uri)
    try:
        default = PoseTransfer(model_uri)
    except InferenceError as exc:
        if required:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"note: no model yet ({exc}); the page will use {model_uri} once it is registered")
        default = None
    except Exception as exc:  # a store still being created by `mlflow server` beside us (make ui), say
        if required:
            raise
        print(f"note: the registry cannot be read yet ({type(exc).__name__}); the page retries on each request")
        default = None
    gallery = Gallery.from_project(project_root)
    app = create_app(Service(Models(model_uri, default), gallery))
    if default is not None:
        print(f"model: {default.card.headline()}")
        if caveat := default.card.caveat():
            print(f"note: {caveat}")
    print(gallery.note or f"gallery: {len(gallery.people)} people and {len(gallery.poses)} poses (test split)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {host}: anyone who can reach this machine can use the page", file=sys.stderr)
    print(f"pg2 serve: http://{host}:{port}/   (Ctrl-C stops it)", flush=True)
    # uvicorn's own lines only when something is wrong (a port already taken); no access log
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0
