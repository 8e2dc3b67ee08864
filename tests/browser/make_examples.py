"""Writes the example images of the web page, static/examples/*.png and examples.json.

    /usr/bin/python3 tests/browser/make_examples.py

Six Fashion-MNIST test images (the first test image of six classes; Debian's
dataset-fashion-mnist, read by tools/datasets.py) and two images that are not clothes (uniform
noise, seed 0; a checkerboard), all 28x28 8-bit gray PNGs. Deterministic: running it again
rewrites the same bytes."""

import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import datasets  # noqa: E402

OUT = REPO / "static" / "examples"
CLASSES = ["T-shirt/top", "Trouser", "Dress", "Sneaker", "Bag", "Ankle boot"]


def gray_png(pixels):
    """uint8 [H, W] -> PNG bytes (gray, 8 bit, no filter)."""
    h, w = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def slug(name):
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def main():
    x, y = datasets.load_fashion_mnist("test")
    items = []
    for name in CLASSES:
        k = datasets.FMNIST_LABELS.index(name)
        i = int(np.flatnonzero(y == k)[0])
        file = f"fmnist-{slug(name)}.png"
        (OUT / file).write_bytes(gray_png(x[i]))
        items.append({"file": file, "title": f"{name} (Fashion-MNIST test image {i})",
                      "shape": [1, 28, 28], "kind": "clothes"})
    noise = np.random.default_rng(0).integers(0, 256, size=(28, 28), dtype=np.uint8)
    (OUT / "noise.png").write_bytes(gray_png(noise))
    items.append({"file": "noise.png", "title": "uniform noise (not clothes)", "shape": [1, 28, 28],
                  "kind": "other"})
    yy, xx = np.mgrid[0:28, 0:28]
    board = np.where(((yy // 7) + (xx // 7)) % 2 == 0, 255, 0).astype(np.uint8)
    (OUT / "checkerboard.png").write_bytes(gray_png(board))
    items.append({"file": "checkerboard.png", "title": "checkerboard (not clothes)",
                  "shape": [1, 28, 28], "kind": "other"})
    doc = {"about": "example inputs of the web page; made by tests/browser/make_examples.py",
           "examples": items}
    (OUT / "examples.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(items)} examples to {OUT}")


if __name__ == "__main__":
    main()
