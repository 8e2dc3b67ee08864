"""Training/evaluation data for tools/train.py (and anything else that needs real images).

Only Fashion-MNIST is provided here, read from Debian's package `dataset-fashion-mnist`
(`/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`).
The IDX files are parsed directly (big-endian header: magic 0x00000803 for images
[N, rows, cols] uint8, 0x00000801 for labels [N] uint8); no torchvision needed.

    import datasets
    x, y = datasets.load_fashion_mnist("train")   # x uint8 [60000, 28, 28], y uint8 [60000]
    x, y = datasets.load_fashion_mnist("test")    # x uint8 [10000, 28, 28], y uint8 [10000]

A missing package raises DatasetMissing with a one-line message naming the path and the
package; `python3 tools/datasets.py` prints the shapes (or that line, exit 1).
"""

import gzip
import os
import struct
import sys

import numpy as np

__all__ = ["DatasetMissing", "FMNIST_DIR", "FMNIST_LABELS", "load_fashion_mnist", "load",
           "read_idx"]

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"]
_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000)}


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


def load(name, split="train"):
    """Dataset by name (as in a training config's data.dataset)."""
    key = str(name).lower().replace("_", "-").replace(" ", "")
    if key in ("fashion-mnist", "fashionmnist", "fmnist"):
        return load_fashion_mnist(split)
    raise ValueError(f"unknown dataset {name!r} (available: fashion-mnist)")


if __name__ == "__main__":
    try:
        for s in ("train", "test"):
            xs, ys = load_fashion_mnist(s)
            print(f"fashion-mnist {s}: images {xs.dtype}{list(xs.shape)}, labels {list(ys.shape)}, "
                  f"mean pixel {xs.mean():.2f}, class counts {np.bincount(ys, minlength=10).tolist()}")
    except DatasetMissing as e:
        print(f"datasets: {e}", file=sys.stderr)
        sys.exit(1)
