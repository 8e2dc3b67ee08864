#!/usr/bin/python3
"""Calibrates a Fashion-MNIST model's anomaly threshold with the C engine.

Computes bits/dim (`scored likelihood`, RK45 at 1e-5, uniform dequantization) of held-out
Fashion-MNIST test images: the first --n images give the quantiles of the in-distribution
bits/dim, the next --n measure the false-positive rate of the chosen threshold on images the
quantiles never saw.  Writes the result into the model card's "anomaly" section:

    {"score": "bpd", "threshold": q, "threshold_quantile": 0.99,
     "quantiles": {"0.9": ..., "0.95": ..., "0.99": ...}, "fpr_held_out": ..., ...}

Usage: /usr/bin/python3 tools/calibrate_anomaly.py models/fmnist-gmm.json [--n 500]
Needs ./scored built (make) and the Debian package dataset-fashion-mnist.
"""
import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np

QUANTILES = (0.9, 0.95, 0.99)


def fail(msg):
    print("calibrate_anomaly: " + msg, file=sys.stderr)
    sys.exit(1)


def read_idx_images(path):
    with gzip.open(path, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 2051:
            fail("%s is not an IDX image file" % path)
        return np.frombuffer(f.read(n * rows * cols), dtype=np.uint8).reshape(n, rows, cols)


def png_gray(img):
    """A minimal 8-bit grayscale PNG (no filter), enough for the engine's reader."""
    h, w = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def bits_per_dim(scored, model, images, tmp):
    out = []
    for i, img in enumerate(images):
        path = os.path.join(tmp, "x%d.png" % i)
        with open(path, "wb") as f:
            f.write(png_gray(img))
        res = subprocess.run([scored, "likelihood", "--model", model, "--input", path, "--seed", str(i)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            fail("scored likelihood failed: " + res.stderr.strip())
        out.append(json.loads(res.stdout.splitlines()[0])["bits_per_dim"])
        os.unlink(path)
    return np.array(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a Fashion-MNIST model file (its card gets the anomaly section)")
    ap.add_argument("--n", type=int, default=500, help="images for the quantiles, and as many for the FPR")
    ap.add_argument("--scored", default="./scored")
    ap.add_argument("--fmnist-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--quantile", type=float, default=0.99, help="the default threshold's quantile")
    args = ap.parse_args()
    test = os.path.join(args.fmnist_dir, "t10k-images-idx3-ubyte.gz")
    if not os.path.exists(test):
        fail("missing %s (apt-get install dataset-fashion-mnist)" % test)
    if not os.access(args.scored, os.X_OK):
        fail("%s is not built (run make)" % args.scored)
    images = read_idx_images(test)
    if 2 * args.n > len(images):
        fail("--n is too large for the %d test images" % len(images))
    with tempfile.TemporaryDirectory() as tmp:
        calib = bits_per_dim(args.scored, args.model, images[: args.n], tmp)
        held = bits_per_dim(args.scored, args.model, images[args.n: 2 * args.n], tmp)
    qs = {("%g" % q): round(float(np.quantile(calib, q)), 4) for q in QUANTILES}
    threshold = qs["%g" % args.quantile]
    fpr = float(np.mean(held > threshold))
    with open(args.model) as f:
        doc = json.load(f)
    doc.setdefault("card", {})["anomaly"] = {
        "score": "bpd",
        "threshold": threshold,
        "threshold_quantile": args.quantile,
        "quantiles": qs,
        "fpr_held_out": round(fpr, 4),
        "bpd_mean": round(float(calib.mean()), 4),
        "how_made": ("tools/calibrate_anomaly.py: bits/dim from `scored likelihood` (RK45 1e-5, uniform "
                     "dequantization) of Fashion-MNIST test images 0..%d (quantiles) and %d..%d "
                     "(false-positive rate of the threshold)" % (args.n - 1, args.n, 2 * args.n - 1)),
    }
    text = json.dumps(doc, separators=(",", ":"))
    # keep the generator's layout: one top-level key per line
    text = "{\n" + ",\n".join(json.dumps(k) + ":" + json.dumps(v, separators=(",", ":"))
                              for k, v in doc.items()) + "\n}\n"
    with open(args.model, "w") as f:
        f.write(text)
    print("%s: threshold %.4f bpd (q%g), quantiles %s, held-out FPR %.4f, mean %.4f bpd"
          % (args.model, threshold, args.quantile, qs, fpr, calib.mean()))


if __name__ == "__main__":
    main()
