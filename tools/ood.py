"""Out-of-distribution image sets for Fashion-MNIST models, all uint8 [N, 1, 28, 28].

Every set is a pure function of installed data and fixed seeds, so the same call returns the
same bytes on any machine with the same Debian packages:

* "emoji-gray": every emoji-32 image (train and held-out splits, 3,926 with the current font,
  in the font's glyph order; `datasets.load_emoji32("all")`, 32x32 RGB on white), converted
  to gray with PIL's "L" mode (ITU-R 601-2 luma, L = (299 R + 587 G + 114 B) / 1000) and
  resized to 28x28 with PIL's box filter. Mostly light backgrounds with dark outlines, the
  opposite polarity of Fashion-MNIST's black background.
* "fmnist-vflip": the 10,000 Fashion-MNIST test images flipped upside down (rows reversed).
  Same pixel statistics as the test set, only the spatial structure differs.
* "uniform-noise": 1,000 images of independent uniform bytes 0..255 from
  numpy.random.default_rng(20210101).
* "constant": 256 images, image k filled with the value k (k = 0..255).

    import ood
    x = ood.load("fmnist-vflip")      # uint8 [10000, 1, 28, 28]
    ood.NAMES                         # the names above, in this order

`python3 tools/ood.py` prints each set's shape, mean pixel and a checksum.
"""

import os
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import datasets  # noqa: E402

__all__ = ["NAMES", "load", "NOISE_SEED"]

NAMES = ["emoji-gray", "fmnist-vflip", "uniform-noise", "constant"]
NOISE_SEED = 20210101
_SIZE = 28


def emoji_gray(rgb, size=_SIZE):
    """uint8 [N, 3, H, W] RGB -> uint8 [N, 1, size, size]: PIL 'L' luma, then box resize."""
    from PIL import Image
    out = np.empty((len(rgb), 1, size, size), dtype=np.uint8)
    for i, x in enumerate(rgb):
        im = Image.fromarray(np.ascontiguousarray(np.transpose(x, (1, 2, 0))), "RGB").convert("L")
        out[i, 0] = np.asarray(im.resize((size, size), Image.BOX), dtype=np.uint8)
    return out


def load(name):
    """uint8 [N, 1, 28, 28] of the named set (see the module docstring)."""
    if name == "emoji-gray":
        return emoji_gray(datasets.load_emoji32("all")[0])
    if name == "fmnist-vflip":
        x, _ = datasets.load_fashion_mnist("test")
        return np.ascontiguousarray(x[:, None, ::-1, :])
    if name == "uniform-noise":
        rng = np.random.default_rng(NOISE_SEED)
        return rng.integers(0, 256, size=(1000, 1, _SIZE, _SIZE), dtype=np.uint8)
    if name == "constant":
        levels = np.arange(256, dtype=np.uint8)
        return np.ascontiguousarray(np.broadcast_to(levels[:, None, None, None],
                                                    (256, 1, _SIZE, _SIZE)))
    raise ValueError(f"unknown OOD set {name!r} (available: {', '.join(NAMES)})")


if __name__ == "__main__":
    try:
        for n in NAMES:
            x = load(n)
            print(f"{n}: {x.dtype}{list(x.shape)}, mean pixel {x.mean():.2f}, "
                  f"crc32 {zlib.crc32(x.tobytes()):08x}")
    except datasets.DatasetMissing as e:
        print(f"ood: {e}", file=sys.stderr)
        sys.exit(1)
