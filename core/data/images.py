"""Opening images safely and consistently: bomb-guarded, any mode to 3-channel RGB, a perceptual hash."""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from scipy.fft import dctn

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# Stated explicitly rather than relying on Pillow's default: about 7000x7000.
MAX_IMAGE_PIXELS = 50_000_000
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
# A truncated file must fail, not load half grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class BadImage(Exception):
    """An image that cannot be used; str() is the reason, in words."""


def is_image_name(name: str) -> bool:
    n = Path(name).name
    return Path(n).suffix.lower() in IMAGE_EXTS and not n.startswith((".", "._"))


def _to_uint8(arr: np.ndarray, full_scale: float) -> np.ndarray:
    """Scale by the format's own range (never by this image's maximum, which would make a dark scan and a
    bright scan of the same thing identical); NaN reads as black, +Inf as white."""
    with np.errstate(invalid="ignore", over="ignore"):
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=full_scale, neginf=0.0)
        return np.clip(np.rint(arr / full_scale * 255.0), 0, 255).astype(np.uint8)


def float_range(arr: np.ndarray) -> float:
    """The range floating-point pixels are written in: [0, 1] (the usual convention), else 8- or 16-bit
    levels stored as floats. Decided from the value range, so images written the same way scale the same."""
    with np.errstate(invalid="ignore"):
        finite = arr[np.isfinite(arr)]
    top = float(finite.max()) if finite.size else 0.0
    return 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 65535.0


def to_rgb(img: Image.Image) -> Image.Image:
    """3-channel RGB whatever the mode: transparency composited on white, CMYK/palette converted, 16-bit and
    32-bit integer images by the 16-bit range, floating-point images by their format's range."""
    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return Image.fromarray(_to_uint8(np.asarray(img), 65535.0)).convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        return Image.fromarray(_to_uint8(arr, float_range(arr))).convert("RGB")
    return img.convert("RGB")


def open_rgb(source: str | Path | bytes, draft: tuple[int, int] | None = None) -> Image.Image:
    """Decode fully (so truncation shows) under the pixel cap; raise BadImage with a plain reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
            with Image.open(fp) as img:
                w, h = img.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise BadImage(f"{w}x{h} pixels is over the {MAX_IMAGE_PIXELS:,}-pixel limit (possible decompression bomb)")
                if draft and img.format == "JPEG":
                    img.draft("RGB", draft)
                img.load()
                return to_rgb(img)
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(f"too many pixels (over {MAX_IMAGE_PIXELS:,}); possible decompression bomb") from None
    except UnidentifiedImageError:
        raise BadImage("not a readable image (wrong extension or corrupt file)") from None
    except OSError as e:
        msg = str(e)
        if "truncated" in msg.lower() or "premature" in msg.lower():
            raise BadImage("the file is truncated (incomplete download or copy)") from None
        raise BadImage(f"cannot decode: {msg}") from None
    except (ValueError, SyntaxError, TypeError) as e:
        raise BadImage(f"cannot decode: {e}") from None
    except Exception as e:  # decoders raise a zoo of types on hostile input
        raise BadImage(f"cannot decode: {type(e).__name__}: {e}") from None


def phash(img: Image.Image) -> int:
    """64-bit DCT perceptual hash: stable under resize and re-encoding."""
    small = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = dctn(small, norm="ortho")[:8, :8]
    bits = (low > np.median(low.ravel()[1:])).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def colour_signature(img: Image.Image) -> str:
    """Mean colour of each quarter of the image, as 12 hex bytes: the perceptual hash sees only brightness, so
    a red and a blue part of the same shape hash alike; this tells them apart."""
    small = np.asarray(img.convert("RGB").resize((8, 8), Image.Resampling.BOX), dtype=np.float64)
    quads = [small[:4, :4], small[:4, 4:], small[4:, :4], small[4:, 4:]]
    return bytes(int(round(v)) for q in quads for v in q.reshape(-1, 3).mean(0)).hex()


COLOUR_TOLERANCE = 48  # levels of 255 per channel and quarter: re-encoding moves a few, a new colour many


def colours_close(a: str, b: str) -> bool:
    if not a or not b:
        return True  # versions ingested before colours were kept: brightness alone decides
    x, y = np.frombuffer(bytes.fromhex(a), np.uint8), np.frombuffer(bytes.fromhex(b), np.uint8)
    return int(np.abs(x.astype(int) - y.astype(int)).max()) <= COLOUR_TOLERANCE


@dataclass
class ImageInfo:
    width: int
    height: int
    mode: str
    phash: int
    colour: str = ""


def inspect_image(path: Path) -> ImageInfo:
    """Everything the audit needs from one decode: size, original mode, perceptual hash."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h, mode = img.size[0], img.size[1], img.mode
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(f"too many pixels (over {MAX_IMAGE_PIXELS:,}); possible decompression bomb") from None
    except UnidentifiedImageError:
        raise BadImage("not a readable image (wrong extension or corrupt file)") from None
    except OSError as e:
        raise BadImage(f"cannot open: {e}") from None
    rgb = open_rgb(path, draft=(64, 64))
    return ImageInfo(w, h, mode, phash(rgb), colour_signature(rgb))


def square_crop(img: Image.Image, size: int) -> torch.Tensor:
    """Shorter side to size, centre crop: uint8 [3, size, size]."""
    w, h = img.size
    s = size / min(w, h)
    img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
