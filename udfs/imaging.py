"""Decode fetched images into RGB arrays for the vision models, safely and early-downscaled.

Only JPEG, PNG, WebP, GIF and BMP are opened: Pillow knows many more formats, some of them with
a long history of parser bugs, and no platform serves them. The dimensions in the header are
checked before any pixel is decoded, so a small file that would expand to gigabytes (a
"decompression bomb") is refused up front. A JPEG is decoded by libjpeg at 1/2, 1/4 or 1/8 of its
size when that still covers `max_side` (`Image.draft`), which makes a 50-megapixel photo cost
about what a 3-megapixel one does and lets it under the pixel limit.

Transparency is composited on white: transparent logos and stickers are drawn for light
backgrounds, and the colour under fully transparent pixels is often arbitrary.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import (  # noqa: F401 (the plugins are imported to register their formats)
    BmpImagePlugin,
    GifImagePlugin,
    Image,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from schemas.errors import MediaError
from udfs.media import sniff

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
_JPEG = ("JPEG", "MPO")  # MPO: a camera JPEG with a second view, opened as JPEG
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_ORIENTATION = 0x0112
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class DecodedImage:
    """Pixels ready for a model. `width` and `height` are the original's, upright (after EXIF
    orientation) and before downscaling; `scale` maps decoded pixels back onto it."""

    rgb: np.ndarray  # (H, W, 3) uint8, C-contiguous
    width: int
    height: int
    format: str
    scale: float


def decode_image(data: bytes, max_side: int = 1280,
                 max_pixels: int = 40_000_000) -> DecodedImage:
    """Decode `data` upright, as RGB, with its longest side at most `max_side`."""
    with _open(data) as image:
        width, height = image.size
        if _orientation(image) in _TRANSPOSED:
            width, height = height, width
        if image.format in _JPEG:  # in the stored frame: drafting comes before any rotation
            image.draft("RGB", _fit(image.size, max_side))
        _check_pixels(image, max_pixels)
        rgb = _pixels(image, len(data), _fit((width, height), max_side))
        return DecodedImage(rgb, width, height, image.format or "?", rgb.shape[1] / width)


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buffer, "JPEG",
                                                                     quality=quality)
    return buffer.getvalue()


def _open(data: bytes) -> Image.Image:
    """The image with only its header read, or the reason it is not one we decode."""
    try:  # past 2 x MAX_IMAGE_PIXELS Pillow refuses here already, whatever the format
        return Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise MediaError("bomb", f"refused before decoding: {exc}") from exc
    except UnidentifiedImageError as exc:
        mime = sniff(data[:64])
        if mime is None:
            raise MediaError("not_media", f"not an image ({len(data)} bytes)") from exc
        if mime.startswith("image/"):
            raise MediaError("unsupported", f"{mime} is not decoded (only {', '.join(FORMATS)})"
                             " or its header is corrupt") from exc
        raise MediaError("not_media", f"expected an image, received {mime}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError("corrupt", f"unreadable image header: {exc}") from exc


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The size that `size` shrinks to so that its longest side is at most `max_side`."""
    ratio = min(1.0, max_side / max(size))
    return max(1, round(size[0] * ratio)), max(1, round(size[1] * ratio))


def _check_pixels(image: Image.Image, max_pixels: int) -> None:
    """Refuses an image whose decoded size (after any JPEG draft reduction) is over the limit."""
    width, height = image.size
    if width * height > max_pixels:
        raise MediaError("bomb", f"{image.format} would decode to {width}x{height} = "
                         f"{width * height} pixels, over the limit of {max_pixels}")


def _pixels(image: Image.Image, size: int, target: tuple[int, int]) -> np.ndarray:
    try:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        rgb = _shrink(_to_rgb(image), target)
    except Image.DecompressionBombError as exc:
        raise MediaError("bomb", str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise MediaError("corrupt", f"{image.format} {image.size[0]}x{image.size[1]} in "
                         f"{size} bytes cannot be decoded: {exc}") from exc
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def _shrink(image: Image.Image, target: tuple[int, int]) -> np.ndarray:
    """Box-averages by the whole factor, then interpolates the rest (less than 2x, so linear
    does not alias): a few ms where Pillow's antialiased resize takes 15 for a 1.2 MP photo.
    `target` comes from the original size, so a drafted JPEG maps back with the same scale."""
    if target == image.size:
        return np.asarray(image)
    factor = int(min(image.size[0] / target[0], image.size[1] / target[1]))
    if factor >= 2:
        image = image.reduce(factor)
    return cv2.resize(np.asarray(image), target, interpolation=cv2.INTER_LINEAR)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB from any mode: alpha composited on white, 16-bit scaled rather than clipped."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image, dtype=np.uint32)
        return Image.fromarray((np.clip(wide, 0, 65535) // 257).astype(np.uint8)).convert("RGB")
    if "A" in image.mode or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, _WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION, 1))
    except (OSError, SyntaxError, ValueError, TypeError):
        return 1  # unreadable EXIF: the image is used as stored
