"""Training/evaluation data for tools/train.py (and anything else that needs real images).

Fashion-MNIST is read from Debian's package `dataset-fashion-mnist`
(`/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`).
The IDX files are parsed directly (big-endian header: magic 0x00000803 for images
[N, rows, cols] uint8, 0x00000801 for labels [N] uint8); no torchvision needed.

emoji-32 is built from the color bitmaps of Debian's package `fonts-noto-color-emoji`
(NotoColorEmoji.ttf, its CBDT table, one 136x128 PNG per glyph, read with python3-fonttools
and python3-pil): each bitmap is composited on white, centred on a white square and
downscaled to 32x32 RGB with a box filter.  The held-out split is fixed: a glyph is in
"test" when crc32 of its glyph name is 0 mod 10 (about 10%); ligature glyphs (skin tones,
ZWJ sequences) are split independently, so near-duplicates of a test glyph may be in "train".

    import datasets
    x, y = datasets.load_fashion_mnist("train")   # x uint8 [60000, 28, 28], y uint8 [60000]
    x, y = datasets.load_fashion_mnist("test")    # x uint8 [10000, 28, 28], y uint8 [10000]
    x, names = datasets.load_emoji32("train")     # x uint8 [N, 3, 32, 32], names [N]

A missing package raises DatasetMissing with a one-line message naming the path and the
package; `python3 tools/datasets.py` prints the shapes (or that line, exit 1).
"""

import gzip
import io
import os
import struct
import sys
import zlib

import numpy as np

__all__ = ["DatasetMissing", "FMNIST_DIR", "FMNIST_LABELS", "EMOJI_FONT", "load_fashion_mnist",
           "load_emoji32", "load", "read_idx"]

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"]
_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000)}


EMOJI_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"


class DatasetMissing(RuntimeError):
    pass


def read_idx(path):
    """An IDX file (optionally .gz) as a numpy uint8 array of the shape in its header."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4:
        raise ValueError(f"{path}: too short for an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    off = 4 + 4 * ndim
    n = int(np.prod(dims)) if dims else 1
    if len(data) - off != n:
        raise ValueError(f"{path}: header says {dims} ({n} bytes) but {len(data) - off} bytes follow")
    return np.frombuffer(data, dtype=np.uint8, offset=off).reshape(dims).copy()


def load_fashion_mnist(split="train", root=None):
    """(images uint8 [N,28,28], labels uint8 [N]) for split 'train' (60k) or 'test' (10k)."""
    if split not in _FILES:
        raise ValueError(f"split {split!r} is not 'train' or 'test'")
    root = root or os.environ.get("FMNIST_DIR") or FMNIST_DIR
    img_name, lab_name, n = _FILES[split]
    img_path, lab_path = os.path.join(root, img_name), os.path.join(root, lab_name)
    for p in (img_path, lab_path):
        if not os.path.isfile(p):
            raise DatasetMissing(f"Fashion-MNIST file {p} is missing "
                                 f"(install the Debian package dataset-fashion-mnist)")
    x, y = read_idx(img_path), read_idx(lab_path)
    if x.shape != (n, 28, 28) or y.shape != (n,):
        raise ValueError(f"Fashion-MNIST {split}: unexpected shapes {x.shape}, {y.shape}")
    if y.max() > 9:
        raise ValueError(f"Fashion-MNIST {split}: label {int(y.max())} out of range")
    return x, y


def emoji_in_test_split(glyph_name):
    """The fixed held-out rule of emoji-32: crc32(name) % 10 == 0."""
    return zlib.crc32(glyph_name.encode()) % 10 == 0


def emoji_bitmap_to_rgb(png_bytes, size=32):
    """One CBDT PNG -> uint8 [3, size, size]: on white, centred on a square, box-downscaled."""
    from PIL import Image
    im = Image.open(io.BytesIO(png_bytes)).convert("RGBA")
    side = max(im.size)
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    canvas.alpha_composite(im, ((side - im.size[0]) // 2, (side - im.size[1]) // 2))
    rgb = canvas.convert("RGB").resize((size, size), Image.BOX)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1).copy()


def load_emoji32(split="train", font=None, size=32):
    """(images uint8 [N, 3, size, size], glyph names [N]) of split 'train', 'test' or 'all',
    in the font's glyph order."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split {split!r} is not 'train', 'test' or 'all'")
    font = font or os.environ.get("EMOJI_FONT") or EMOJI_FONT
    if not os.path.isfile(font):
        raise DatasetMissing(f"emoji font {font} is missing (install the Debian package "
                             f"fonts-noto-color-emoji)")
    try:
        from fontTools.ttLib import TTFont
    except ImportError as e:
        raise DatasetMissing("python3-fonttools is missing (install the Debian package "
                             "python3-fonttools)") from e
    tt = TTFont(font, lazy=True)
    if "CBDT" not in tt:
        raise ValueError(f"{font}: no CBDT table (not a color bitmap font)")
    strikes = tt["CBDT"].strikeData
    bitmaps = max(strikes, key=len)  # the strike with the most glyphs
    xs, names = [], []
    for name in sorted(bitmaps.keys(), key=tt.getGlyphID):
        if split != "all" and emoji_in_test_split(name) != (split == "test"):
            continue
        xs.append(emoji_bitmap_to_rgb(bitmaps[name].imageData, size))
        names.append(name)
    return np.stack(xs), names


def load(name, split="train"):
    """Images of a dataset by name (as in a training config's data.dataset): uint8 [N, H, W]
    (gray) or [N, C, H, W], and labels (an int array) or None."""
    key = str(name).lower().replace("_", "-").replace(" ", "")
    if key in ("fashion-mnist", "fashionmnist", "fmnist"):
        return load_fashion_mnist(split)
    if key in ("emoji-32", "emoji32", "emoji"):
        return load_emoji32(split)[0], None
    raise ValueError(f"unknown dataset {name!r} (available: fashion-mnist, emoji-32)")


if __name__ == "__main__":
    try:
        for s in ("train", "test"):
            xs, ys = load_fashion_mnist(s)
            print(f"fashion-mnist {s}: images {xs.dtype}{list(xs.shape)}, labels {list(ys.shape)}, "
                  f"mean pixel {xs.mean():.2f}, class counts {np.bincount(ys, minlength=10).tolist()}")
        for s in ("train", "test"):
            xs, names = load_emoji32(s)
            print(f"emoji-32 {s}: images {xs.dtype}{list(xs.shape)}, mean pixel {xs.mean():.2f}")
    except DatasetMissing as e:
        print(f"datasets: {e}", file=sys.stderr)
        sys.exit(1)
