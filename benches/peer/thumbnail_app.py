"""The comparison peer for `cargo bench --bench perf`: the image endpoints written the
way a Django/Gunicorn deployment would, with Pillow, numpy and tifffile, over the same
OME-TIFF files. Not part of the product.

    GET /health                  -> "ok"
    GET /thumb/<file name>/<w>/  -> JPEG, longest side w, OMERO's default rendering
    GET /render/<file name>/     -> JPEG of the whole plane
    GET /cached/<file name>/     -> the 96-px thumbnail, rendered once and kept on disk
                                    (as OMERO.web's thumbnail cache would)
"""

import io
import os

import numpy
import tifffile
from PIL import Image

REPOSITORY = os.environ["REPOSITORY"]
# Outside the repository, which the gateway under test watches for images.
CACHE = os.environ["CACHE"]
COLOURS = [(0, 0, 255), (0, 255, 0), (255, 0, 0)]


def render_rgb(path):
    planes = tifffile.imread(path)  # (C, Y, X) for one Z and T
    if planes.ndim == 2:
        planes = planes[numpy.newaxis]
    height, width = planes.shape[-2:]
    rgb = numpy.zeros((height, width, 3), dtype=numpy.float32)
    for index, plane in enumerate(planes[:3]):
        low, high = float(plane.min()), float(plane.max())
        scaled = numpy.clip((plane.astype(numpy.float32) - low) / max(high - low, 1.0), 0.0, 1.0)
        for channel, weight in enumerate(COLOURS[index % 3]):
            if weight:
                rgb[:, :, channel] += scaled * weight
    return Image.fromarray(numpy.clip(rgb, 0, 255).astype(numpy.uint8), "RGB")


def jpeg(image):
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def render_thumbnail(path, size):
    image = render_rgb(path)
    image.thumbnail((size, size), Image.Resampling.BOX)
    return jpeg(image)


def cached_thumbnail(path):
    cached = os.path.join(CACHE, os.path.basename(path) + ".jpg")
    try:
        with open(cached, "rb") as f:
            return f.read()
    except FileNotFoundError:
        body = render_thumbnail(path, 96)
        with open(cached + ".tmp", "wb") as f:
            f.write(body)
        os.replace(cached + ".tmp", cached)
        return body


def app(environ, start_response):
    parts = [p for p in environ.get("PATH_INFO", "").split("/") if p]
    if parts == ["health"]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [b"ok\n"]
    body = None
    if len(parts) == 3 and parts[0] == "thumb" and parts[2].isdigit():
        body = render_thumbnail(os.path.join(REPOSITORY, parts[1]), int(parts[2]))
    elif len(parts) == 2 and parts[0] == "render":
        body = jpeg(render_rgb(os.path.join(REPOSITORY, parts[1])))
    elif len(parts) == 2 and parts[0] == "cached":
        body = cached_thumbnail(os.path.join(REPOSITORY, parts[1]))
    if body is not None:
        start_response("200 OK", [("Content-Type", "image/jpeg"), ("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"Not Found\n"]
