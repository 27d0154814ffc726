"""Images in every mode and every broken form (CASES.md: images)."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from core.images import BadImage, open_rgb, phash


def png_header_only(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels: the bomb check must fire before any decode."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def encode(img: Image.Image, fmt: str) -> bytes:
    b = io.BytesIO()
    img.save(b, fmt)
    return b.getvalue()


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "L", "1", "I;16", "I", "F"])
def test_every_mode_becomes_rgb(mode):
    base = Image.fromarray((np.arange(32 * 32 * 3).reshape(32, 32, 3) % 255).astype(np.uint8))
    img = base.convert(mode) if mode not in ("I;16",) else base.convert("L").convert("I;16")
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode in ("I;16", "I", "F") else "PNG"
    out = open_rgb(encode(img, fmt))
    assert out.mode == "RGB" and out.size == (32, 32)


def test_transparent_pixels_composite_on_white():
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert open_rgb(encode(img, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_truncated_jpeg_is_rejected():
    data = encode(Image.new("RGB", (64, 64), (10, 200, 30)), "JPEG")
    with pytest.raises(BadImage, match="truncated|decode"):
        open_rgb(data[: len(data) // 2])


def test_text_named_jpg_is_rejected(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("hello", encoding="utf-8")
    with pytest.raises(BadImage, match="not a readable image"):
        open_rgb(p)


def test_decompression_bomb_rejected_before_decoding():
    with pytest.raises(BadImage, match="pixel|bomb"):
        open_rgb(png_header_only(30000, 30000))


def test_phash_survives_resize_and_reencode():
    rng = np.random.default_rng(0)
    img = Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).resize((256, 256))
    again = Image.open(io.BytesIO(encode(img.resize((180, 180)), "JPEG"))).convert("RGB")
    other = Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).resize((256, 256))
    d_same = bin(phash(img) ^ phash(again)).count("1")
    d_other = bin(phash(img) ^ phash(other)).count("1")
    assert d_same <= 5 < d_other
