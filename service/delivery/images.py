"""A photo made safe to keep (contract §17): decoded, turned upright, re-encoded without EXIF.

Pillow writes no EXIF unless `save` is given it, so a re-encode drops the location (GPS) and
the camera's make, model and serial; `ImageOps.exif_transpose` first applies the orientation
tag, so the photo still stands the way the patient took it. HEIC and HEIF (iPhones) open
through pillow-heif's opener and are kept as JPEG, which every browser shows. Pure CPU work:
the downloader runs it on a thread.
"""

from __future__ import annotations

import io
import warnings

import pillow_heif
from PIL import Image, ImageOps

pillow_heif.register_heif_opener()
MAX_PIXELS = 50_000_000  # a 48-megapixel phone photo passes; a decompression bomb does not
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
JPEG_QUALITY = 85
# What each kept type is stored as, by the format Pillow found in the bytes.
STORED_AS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "HEIF": "image/jpeg"}


class NotAnImage(Exception):
    """Raised when the bytes are no image of a kept type (or one too large to decode)."""


def clean(data: bytes) -> tuple[str, bytes]:
    """The photo's content type as stored and its bytes, upright and without metadata."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                found = image.format or ""
                if found not in STORED_AS:
                    raise NotAnImage(found or "unknown")
                upright = ImageOps.exif_transpose(image)
                return STORED_AS[found], _encode(upright, STORED_AS[found])
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise NotAnImage(type(exc).__name__) from None


def _encode(image: Image.Image, content_type: str) -> bytes:
    """Saved without `exif=` (nor icc/xmp): only the pixels."""
    out = io.BytesIO()
    if content_type == "image/jpeg":
        rgb = image if image.mode in ("RGB", "L") else image.convert("RGB")
        rgb.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    elif content_type == "image/png":
        image.save(out, "PNG", optimize=True)
    else:
        image.save(out, "WEBP", quality=JPEG_QUALITY)
    return out.getvalue()
