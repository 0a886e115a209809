"""Unit tests of image decoding: real photos, EXIF orientation, formats and modes (GIF, WebP,
alpha, 16-bit, CMYK), early downscaling of a 50-megapixel JPEG, and the refusals: decompression
bombs, truncated data, formats we do not decode and bytes that are no image at all."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from schemas.errors import MediaError
from trackius.settings import SHARED_DATA
from udfs.imaging import DecodedImage, decode_image, encode_jpeg

IMAGES = SHARED_DATA / "images"
KITE = (IMAGES / "darknet" / "kite.jpg").read_bytes()  # 1352 x 900, 1.4 MB
RED, BLUE = (255, 0, 0), (0, 0, 255)


def encoded(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def halves(size: tuple[int, int], left: tuple[int, int, int] = RED,
           right: tuple[int, int, int] = BLUE) -> Image.Image:
    image = Image.new("RGB", size, right)
    image.paste(left, (0, 0, size[0] // 2, size[1]))
    return image


def solid_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of one colour: kilobytes on disk, width x height pixels decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        checksum = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + checksum
    row, packer = bytes(1 + (width + 7) // 8), zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


def failure(data: bytes, **limits: int) -> MediaError:
    with pytest.raises(MediaError) as caught:
        decode_image(data, **limits)
    return caught.value


def close(pixel: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool(np.abs(pixel.astype(int) - colour).max() <= 12)


def test_decodes_a_real_photo_downscaled() -> None:
    """A real JPEG comes back as contiguous uint8 RGB, longest side at max_side, with its scale."""
    image = decode_image(KITE)
    assert (image.width, image.height, image.format) == (1352, 900, "JPEG")
    assert image.rgb.shape == (852, 1280, 3) and image.rgb.dtype == np.uint8
    assert image.rgb.flags["C_CONTIGUOUS"]
    assert image.scale == pytest.approx(1280 / 1352)


def test_small_images_are_not_upscaled() -> None:
    """An image under max_side keeps its size and a scale of 1."""
    image = decode_image((IMAGES / "skimage" / "camera.png").read_bytes())
    assert (image.rgb.shape, image.scale, image.format) == ((512, 512, 3), 1.0, "PNG")


def test_exif_orientation_is_applied() -> None:
    """Orientation 6 (stored lying on its side) is turned upright: the stored left is the top."""
    exif = Image.Exif()
    exif[0x0112] = 6
    image = decode_image(encoded(halves((300, 200)), "JPEG", exif=exif, quality=95))
    assert image.rgb.shape == (300, 200, 3) and (image.width, image.height) == (200, 300)
    assert close(image.rgb[10, 100], RED) and close(image.rgb[290, 100], BLUE)


def test_orientation_and_downscale_report_the_upright_original() -> None:
    """A rotated JPEG drafted down still reports its upright original size and a matching scale."""
    exif = Image.Exif()
    exif[0x0112] = 8
    image = decode_image(encoded(halves((3000, 2000)), "JPEG", exif=exif), max_side=600)
    assert (image.width, image.height) == (2000, 3000)
    assert image.rgb.shape == (600, 400, 3) and image.scale == pytest.approx(0.2)
    assert close(image.rgb[590, 200], RED)  # orientation 8: the stored left is the bottom


def test_gif_first_frame() -> None:
    """An animated GIF decodes its first frame only."""
    frames = [Image.new("RGB", (64, 48), colour) for colour in (RED, BLUE)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    image = decode_image(data)
    assert (image.format, image.rgb.shape) == ("GIF", (48, 64, 3))
    assert close(image.rgb[24, 32], RED)


def test_webp() -> None:
    """WebP decodes to the pixels it holds."""
    image = decode_image(encoded(halves((200, 100)), "WEBP", quality=95))
    assert image.format == "WEBP" and image.rgb.shape == (100, 200, 3)
    assert close(image.rgb[50, 20], RED) and close(image.rgb[50, 180], BLUE)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_composited_on_white(mode: str) -> None:
    """Transparent pixels become white; opaque ones keep their colour."""
    rgba = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255) if mode != "LA" else (80, 80, 80, 255), (0, 0, 20, 20))
    palette = {"palette": Image.Palette.ADAPTIVE} if mode == "P" else {}
    source = rgba.convert(mode, **palette)
    if mode == "P":
        source.info["transparency"] = source.getpixel((30, 10))
    image = decode_image(encoded(source, "PNG"))
    assert close(image.rgb[10, 30], (255, 255, 255))
    assert close(image.rgb[10, 5], RED if mode != "LA" else (80, 80, 80))


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    """A 16-bit greyscale PNG maps 65535 to 255 and mid-grey to 128 (Pillow alone would clip)."""
    grey = np.array([[0, 32896, 65535]], dtype=np.uint16)
    image = decode_image(encoded(Image.fromarray(grey), "PNG"))
    assert image.rgb[0, :, 0].tolist() == [0, 128, 255]


def test_cmyk_jpeg_and_bmp() -> None:
    """A CMYK JPEG and a BMP both come back as RGB."""
    cmyk = decode_image(encoded(halves((64, 32)).convert("CMYK"), "JPEG", quality=95))
    assert cmyk.rgb.shape == (32, 64, 3) and close(cmyk.rgb[16, 8], RED)
    bmp = decode_image(encoded(halves((64, 32)), "BMP"))
    assert bmp.format == "BMP" and close(bmp.rgb[16, 60], BLUE)


@pytest.fixture(scope="module")
def fifty_megapixels() -> bytes:
    """An 8660 x 5773 JPEG (50 MP): a tiled real photo, so libjpeg has real content to decode."""
    photo = np.asarray(Image.open(io.BytesIO(KITE)))
    tiled = np.tile(photo, (7, 7, 1))[:5773, :8660]
    return encode_jpeg(tiled, quality=80)


def test_fifty_megapixel_jpeg_decodes_drafted(fifty_megapixels: bytes) -> None:
    """A 50 MP JPEG is decoded at a fraction of its size: it passes a 10 MP limit it exceeds."""
    image = decode_image(fifty_megapixels, max_pixels=10_000_000)
    assert (image.width, image.height) == (8660, 5773)
    assert image.rgb.shape == (853, 1280, 3)
    assert image.scale == pytest.approx(1280 / 8660)


def test_huge_png_is_a_bomb_before_decoding() -> None:
    """A 50 MP PNG of one colour (a few KB) is refused from its header, naming its size."""
    data = solid_png(8660, 5773)
    assert len(data) < 100_000
    error = failure(data)
    assert error.code == "bomb" and "8660x5773" in error.detail


def test_pillow_hard_limit_is_a_bomb_too() -> None:
    """A 20000 x 20000 PNG trips Pillow's own refusal, reported as a bomb."""
    assert failure(solid_png(20_000, 20_000)).code == "bomb"


def test_jpeg_that_drafting_cannot_save_is_a_bomb(fifty_megapixels: bytes) -> None:
    """Drafting reduces at most 8x per side: under a tiny limit even the 50 MP JPEG is a bomb."""
    assert failure(fifty_megapixels, max_pixels=100_000).code == "bomb"


def test_truncated_jpeg_is_corrupt() -> None:
    """Half a real JPEG is corrupt, and the message says it is truncated."""
    error = failure(KITE[: len(KITE) // 2])
    assert error.code == "corrupt" and "truncated" in error.detail
    assert "JPEG 1352x900" in error.detail


@pytest.mark.parametrize(("data", "code"), [
    (np.random.default_rng(7).bytes(5000), "not_media"),
    (b"<!DOCTYPE html><html><body>not an image</body></html>", "not_media"),
    (b"", "not_media"),
    (encoded(Image.new("RGB", (8, 8)), "TIFF"), "unsupported"),
    ((SHARED_DATA / "audio" / "speech" / "jfk.flac").read_bytes()[:4096], "not_media"),
])
def test_what_is_not_a_decodable_image(data: bytes, code: str) -> None:
    """Random bytes, HTML and audio are not media; a TIFF is an image we do not decode."""
    assert failure(data).code == code


def test_encode_jpeg_round_trips() -> None:
    """encode_jpeg gives bytes that decode back to about the same pixels."""
    rgb = np.asarray(halves((64, 64)))
    decoded: DecodedImage = decode_image(encode_jpeg(rgb, quality=95))
    assert np.abs(decoded.rgb.astype(int) - rgb).mean() < 3
