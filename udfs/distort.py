"""Seeded distortions of an image, for measuring known-image detection (trackius/imageid.py).

One copy per kind the detection must survive: a resize of 0.3-2x, a crop of up to 20 %, JPEG
at quality 30, brightness and contrast each changed by up to 30 %, a text overlay, a horizontal
flip, and a "combined" copy that chains a crop, a flip, a brightness change, a resize and JPEG
(what a re-posted meme typically goes through). Every random choice comes from the generator the
caller passes, so the same seed gives the same copies.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

JPEG_QUALITY = 30
MAX_CROP = 0.20  # the fraction of each side that may go
MAX_CHANGE = 0.30  # brightness and contrast, either way
WORDS = ("BREAKING", "lol", "when you see it", "SALE -50%", "#trending", "me irl", "nope", "Reposted")

Distortion = Callable[[Image.Image, np.random.Generator], Image.Image]


def resize(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Scale both sides by one factor, log-uniform in 0.3-2 (thumbnails and upscales alike)."""
    factor = float(np.exp(rng.uniform(np.log(0.3), np.log(2.0))))
    size = (max(8, round(image.width * factor)), max(8, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BILINEAR if factor > 1 else Image.Resampling.LANCZOS)


def crop(image: Image.Image, rng: np.random.Generator, most: float = MAX_CROP) -> Image.Image:
    """Keep a window losing between half of `most` and `most` of each side, at a random place."""
    width_cut = round(image.width * rng.uniform(most / 2, most))
    height_cut = round(image.height * rng.uniform(most / 2, most))
    left, top = int(rng.integers(0, width_cut + 1)), int(rng.integers(0, height_cut + 1))
    return image.crop((left, top, image.width - (width_cut - left), image.height - (height_cut - top)))


def jpeg(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _factor(rng: np.random.Generator) -> float:
    """1 ± 10-30 %: a change too small to see would not test anything."""
    return 1.0 + float(rng.choice([-1, 1]) * rng.uniform(0.1, MAX_CHANGE))


def brightness(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(_factor(rng))


def contrast(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(_factor(rng))


def text(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A caption of a tenth of the image height, white with a black outline, placed at random."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    size = max(10, image.height // 10)
    font = ImageFont.load_default(size=size)
    caption = str(rng.choice(WORDS))
    left, top, right, bottom = draw.textbbox((0, 0), caption, font=font, stroke_width=max(1, size // 12))
    x = int(rng.integers(0, max(1, image.width - (right - left))))
    y = int(rng.integers(0, max(1, image.height - (bottom - top))))
    draw.text((x, y), caption, font=font, fill=(255, 255, 255), stroke_width=max(1, size // 12),
              stroke_fill=(0, 0, 0))
    return out


def flip(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def combined(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Crop (up to 10 %), flip, brightness, resize, JPEG: several mild steps in one copy."""
    image = crop(image, rng, most=0.10)
    for step in (flip, brightness, resize, jpeg):
        image = step(image, rng)
    return image


KINDS: dict[str, Distortion] = {
    "resize": resize, "crop": crop, "jpeg": jpeg, "brightness": brightness, "contrast": contrast,
    "text": text, "flip": flip, "combined": combined,
}


def distortions(rgb: np.ndarray, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """One distorted copy of an RGB uint8 image per kind, in the order of KINDS."""
    image = Image.fromarray(np.ascontiguousarray(rgb[..., :3]), "RGB")
    return [(name, np.asarray(step(image, rng).convert("RGB"))) for name, step in KINDS.items()]
