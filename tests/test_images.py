"""Images in every mode and every broken form (CASES.md: images)."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from core.data.images import BadImage, open_rgb, phash


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


def _png16(arr) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def test_16_bit_scans_keep_their_absolute_intensity():
    """A dark and a bright scan of the same texture used to come out as the same picture (each image was
    divided by its own maximum); intensity can be the class."""
    from core.data.images import open_rgb

    tex = np.random.default_rng(0).integers(0, 4096, (32, 32))
    dark, bright = (np.asarray(open_rgb(_png16(tex * k)), dtype=float).mean() for k in (1, 10))
    assert bright / dark == pytest.approx(10, rel=0.05)
    assert np.asarray(open_rgb(_png16(np.full((8, 8), 65535)))).max() == 255


def test_float_images_scale_by_their_range_and_nan_reads_black_without_warnings():
    import io
    import warnings

    from core.data.images import open_rgb

    def tiff(arr) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(arr.astype(np.float32), mode="F").save(buf, format="TIFF")
        return buf.getvalue()

    half, quarter = np.full((8, 8), 0.5), np.full((8, 8), 0.25)
    assert np.asarray(open_rgb(tiff(half))).mean() == pytest.approx(128, abs=1)
    assert np.asarray(open_rgb(tiff(quarter))).mean() == pytest.approx(64, abs=1)  # not stretched to white
    odd = np.full((4, 4), np.nan)
    odd[0, 0], odd[1, 1], odd[2, 2] = 0.5, np.inf, -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        px = np.asarray(open_rgb(tiff(odd)))[..., 0]
    assert (px[0, 0], px[1, 1], px[2, 2], px[3, 3]) == (128, 255, 0, 0)
