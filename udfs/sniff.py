"""Recognise media by its first bytes, and check that fetched content is the kind of part asked for.

The bytes are trusted over the declared Content-Type: CDNs mislabel media all the time, so the
declared type only serves to explain a refusal. Pure: bytes in, a media type or a `MediaError` out.
"""

from __future__ import annotations

from schemas.errors import MediaError

KINDS = ("image", "video", "audio")
_HEAD = 64  # bytes enough for every signature below

_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
          (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"), (b"II*\x00", "image/tiff"),
          (b"MM\x00*", "image/tiff"), (b"fLaC", "audio/flac"), (b"ID3", "audio/mpeg"))
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
_FTYP = {b"qt  ": "video/quicktime", b"M4A ": "audio/mp4", b"M4B ": "audio/mp4",
         b"heic": "image/heic", b"heix": "image/heic", b"mif1": "image/heif", b"avif": "image/avif"}
_BMP_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}
# Audio often travels in containers that sniff as video (an .m4a branded "isom", Opus in WebM,
# the sound of a video part),
# and platforms post animated GIFs as video; the decoder downstream has the last word.
_ACCEPTS = {"image": ("image/",), "video": ("video/", "image/gif"),
            "audio": ("audio/", "video/")}


def sniff(head: bytes) -> str | None:
    """The media type the first bytes announce, or None when they announce no media we know."""
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF":
        return _RIFF.get(head[8:12])
    if head[4:8] == b"ftyp":
        return _FTYP.get(head[8:12], "video/3gpp" if head[8:11] == b"3gp" else "video/mp4")
    if head[:4] == b"\x1aE\xdf\xa3":
        return "video/webm" if b"webm" in head[:_HEAD] else "video/x-matroska"
    if head[:4] == b"OggS":
        return "video/ogg" if b"\x80theora" in head[:_HEAD] else "audio/ogg"
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "image/bmp"
    return _mpeg_audio(head)


def _mpeg_audio(head: bytes) -> str | None:
    """MPEG audio without an ID3 tag starts with an 11-bit frame sync; layer bits 00 mean ADTS."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0 or head[1] & 0x18 == 0x08:
        return None
    return "audio/aac" if head[1] & 0x06 == 0 else "audio/mpeg"


def describe(head: bytes) -> str:
    """Words for bytes that are not media, for the message that refuses them."""
    text = head[:256].lstrip().lower()
    if not head:
        return "an empty body"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        what = "an HTML page"
    elif text.startswith((b"<?xml", b"<svg")):
        what = "XML (SVG is not decoded)"
    elif text[:1] in (b"{", b"["):
        what = "JSON"
    elif all(32 <= b < 127 or b in b"\t\r\n" for b in text):
        what = "plain text"
    else:
        what = "unrecognised binary data"
    return f"{what} starting {head[:24]!r}"


def check_content(data: bytes, kind: str, declared: str | None = None) -> str:
    """The sniffed media type of `data`, or MediaError("not_media") when it is not a `kind`."""
    mime = sniff(data[:_HEAD])
    served = f" (served as {declared})" if declared else ""
    if mime is None:
        raise MediaError("not_media", f"expected {kind}{served}, received {describe(data)}")
    if not mime.startswith(_ACCEPTS[kind]):
        raise MediaError("not_media", f"expected {kind}{served}, received {mime}")
    return mime
