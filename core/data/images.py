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


HUE_BINS = 12  # 30 degrees each, the first centred on red


def colour_signature(img: Image.Image) -> str:
    """The colours the perceptual hash cannot see (it reads brightness only, so a red and a blue disc of the
    same shape hash alike), as hex bytes: the mean colour of each quarter (12 bytes), then which hues the
    coloured pixels have, whatever their share of the image (12 bytes), then that share (1 byte). A small red
    object on white moves the quarters' means little; its hue histogram is all red."""
    rgb = img.convert("RGB")
    small = np.asarray(rgb.resize((8, 8), Image.Resampling.BOX), dtype=np.float64)
    quads = [small[:4, :4], small[:4, 4:], small[4:, :4], small[4:, 4:]]
    means = [int(round(v)) for q in quads for v in q.reshape(-1, 3).mean(0)]
    hsv = np.asarray(rgb.resize((32, 32), Image.Resampling.BOX).convert("HSV"), dtype=np.float64).reshape(-1, 3)
    coloured = (hsv[:, 1] > 64) & (hsv[:, 2] > 40)  # saturation and value of 255: greys and near-black are not
    bins = np.floor(((hsv[coloured, 0] * 360 / 256 + 15) % 360) / (360 / HUE_BINS)).astype(int)
    hist = np.bincount(bins, minlength=HUE_BINS) / max(1, coloured.sum())
    return bytes(means + [int(round(v * 255)) for v in hist] + [int(round(coloured.mean() * 255))]).hex()


COLOUR_TOLERANCE = 48  # levels of 255 per channel and quarter: re-encoding moves a few, a new colour many
HUE_TOLERANCE = 0.5  # of 2 (all hues moved): a re-encode or slight crop moves a little, another colour most
COLOURED_MIN = 0.01  # share of coloured pixels below which hue says nothing


def colours_close(a: str, b: str) -> bool:
    if not a or not b:
        return True  # versions ingested before colours were kept: brightness alone decides
    x, y = np.frombuffer(bytes.fromhex(a), np.uint8).astype(int), np.frombuffer(bytes.fromhex(b), np.uint8).astype(int)
    if np.abs(x[:12] - y[:12]).max() > COLOUR_TOLERANCE:
        return False
    if len(x) < 25 or len(y) < 25:  # a version kept before hues were
        return True
    if max(x[24], y[24]) / 255 < 3 * COLOURED_MIN:
        return True  # both (nearly) grey: too few coloured pixels for their hues to say anything
    if min(x[24], y[24]) / 255 < COLOURED_MIN:
        return False  # one coloured, one grey
    return _hue_distance(x[12:24] / 255, y[12:24] / 255) <= HUE_TOLERANCE


def _hue_distance(p: np.ndarray, q: np.ndarray) -> float:
    """L1 distance of two hue histograms, each blurred over its neighbour bins (hue is a circle): a hue on a
    bin's edge that a re-encode moves to the next bin costs little."""
    return float(np.abs(_blur(p) - _blur(q)).sum())


def _blur(h: np.ndarray) -> np.ndarray:
    return 0.5 * h + 0.25 * np.roll(h, 1) + 0.25 * np.roll(h, -1)


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
