"""The comparison peer for `cargo bench --bench peer`: the thumbnail endpoint written the
way a Django/Gunicorn deployment would, with Pillow, numpy and tifffile, over the same
OME-TIFF files. Not part of the product.

    GET /health                 -> "ok"
    GET /thumb/<file name>/<w>/ -> JPEG, longest side w, OMERO's default rendering
"""

import io
import os

import numpy
import tifffile
from PIL import Image

REPOSITORY = os.environ["REPOSITORY"]
COLOURS = [(0, 0, 255), (0, 255, 0), (255, 0, 0)]


def render_thumbnail(path, size):
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
    image = Image.fromarray(numpy.clip(rgb, 0, 255).astype(numpy.uint8), "RGB")
    image.thumbnail((size, size), Image.Resampling.BOX)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def app(environ, start_response):
    parts = [p for p in environ.get("PATH_INFO", "").split("/") if p]
    if parts == ["health"]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [b"ok\n"]
    if len(parts) == 3 and parts[0] == "thumb" and "/" not in parts[1] and parts[2].isdigit():
        body = render_thumbnail(os.path.join(REPOSITORY, parts[1]), int(parts[2]))
        start_response("200 OK", [("Content-Type", "image/jpeg"), ("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"Not Found\n"]
