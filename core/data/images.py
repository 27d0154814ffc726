"""Opening images safely and consistently (bomb-guarded, any mode to 3-channel RGB: core.portable), what the
audit reads from each (size, mode, perceptual hash, colours)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy.fft import dctn

# decoding, converting and cropping are written once, in the code every export carries
from ..portable import MAX_IMAGE_PIXELS, BadImage, float_range, is_image_name, open_rgb, square_crop, to_rgb

__all__ = ["BadImage", "MAX_IMAGE_PIXELS", "is_image_name", "open_rgb", "to_rgb", "float_range", "square_crop",
           "phash", "colour_signature", "colours_close", "inspect_image", "ImageInfo"]


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
