"""Byte size of an 8-bit image's PNG as the engine writes it, and the complexity in bits/dim.

The server's anomaly endpoint (server/api.c png_complexity) re-encodes each input with
engine/image.c image_write_png_mem: libpng 1.6 with every setting left at its default (8-bit
gray or RGB, no interlace, no ancillary chunks). The complexity term of Serra et al. (ICLR
2020) is then 8 * png_bytes / (W * H * C). This module predicts that byte count without
libpng, from what libpng's defaults amount to:

* Each row is filtered with the one of None, Sub, Up, Average, Paeth (tried in that order)
  whose filtered bytes have the smallest sum of |v| with v read as a signed byte
  (min(v, 256 - v)); a later filter must be strictly smaller to win. The row above the
  first is all zeros. libpng drops Up, Average and Paeth for 1-row images and Sub, Average
  and Paeth for 1-column images. The filter type byte is prepended to each filtered row.
* The filtered rows go through one zlib stream: level 6 (Z_DEFAULT_COMPRESSION), memLevel 8,
  strategy Z_FILTERED (libpng's default whenever filtering is on), and a window of 2^k
  bytes, k the smallest >= 9 with (rowbytes + 1) * height + 262 <= 2^k (libpng shrinks the
  window for images of at most 16 KiB of filtered data; otherwise 2^15).
* File = 8 (signature) + 25 (IHDR) + the zlib stream in IDAT chunks of at most 8,192 bytes,
  12 bytes of framing each + 12 (IEND).

Python's zlib module uses the system zlib, the same library libpng calls, so the stream is
byte-identical. `python3 tools/png_complexity.py --check` compares this with a PNG writer
built from engine/image.c on a few thousand images (Fashion-MNIST, the OOD sets, emoji RGB)
and must report zero mismatches; `--check-server URL [MODEL [N]]` compares it with a running
server's /anomaly (bits_per_dim - score, score "complexity") on N images of each set.
tools/README.md ("Evaluation") records the results.
"""

import sys
import zlib

import numpy as np

__all__ = ["png_size", "png_sizes", "complexity_bpd", "filter_rows"]

_IDAT_MAX = 8192  # libpng's default compression buffer (PNG_ZBUF_SIZE)


def _signed_cost(v):
    """Per-row sum of min(v, 256 - v) over the last axis of uint8 v (as int64)."""
    v = v.astype(np.int64)
    return np.minimum(v, 256 - v).sum(axis=-1)


def filter_rows(img):
    """uint8 [H, W, C] -> (filter type per row [H], filtered bytes [H, W*C]) as libpng picks."""
    img = np.ascontiguousarray(img, dtype=np.uint8)
    if img.ndim != 3:
        raise ValueError(f"expected [H, W, C] uint8, got shape {img.shape}")
    H, W, C = img.shape
    raw = img.reshape(H, W * C).astype(np.int64)
    prev = np.zeros_like(raw)
    prev[1:] = raw[:-1]
    left = np.zeros_like(raw)            # a: the byte bpp to the left
    left[:, C:] = raw[:, :-C]
    upleft = np.zeros_like(raw)          # c: the byte above a
    upleft[:, C:] = prev[:, :-C]
    pa = np.abs(prev - upleft)
    pb = np.abs(left - upleft)
    pc = np.abs(left + prev - 2 * upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
    cands = np.stack([raw, raw - left, raw - prev, raw - (left + prev) // 2, raw - paeth]) & 0xFF
    cost = _signed_cost(cands)           # [5, H]
    allowed = [f for f in range(1, 5)
               if not (H == 1 and f in (2, 3, 4)) and not (W == 1 and f in (1, 3, 4))]
    best = np.zeros(H, dtype=np.int64)
    best_cost = cost[0].copy()
    for f in allowed:                    # strictly smaller wins, so ties keep the earlier filter
        better = cost[f] < best_cost
        best[better] = f
        best_cost[better] = cost[f][better]
    rows = cands[best, np.arange(H)].astype(np.uint8)
    return best.astype(np.uint8), rows


def _window_bits(data_size):
    bits = 15
    if data_size <= 16384:
        half = 1 << (bits - 1)
        while data_size + 262 <= half:
            half >>= 1
            bits -= 1
    return max(bits, 9)


def png_size(img):
    """Bytes of the PNG libpng writes (defaults) for uint8 [H, W] or [H, W, C], C in 1, 3."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (1, 3):
        raise ValueError(f"expected uint8 [H, W] or [H, W, 1|3], got {img.dtype} {img.shape}")
    H, W, C = img.shape
    ftype, rows = filter_rows(img)
    data = np.concatenate([ftype[:, None], rows], axis=1).tobytes()
    z = zlib.compressobj(6, zlib.DEFLATED, _window_bits(len(data)), 8, zlib.Z_FILTERED)
    n = len(z.compress(data)) + len(z.flush())
    chunks = max(1, -(-n // _IDAT_MAX))
    return 8 + 25 + n + 12 * chunks + 12


def png_sizes(images):
    """PNG byte sizes of uint8 images [N, C, H, W] (C = 1 or 3, planar as in .npy files)."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"expected [N, C, H, W], got shape {images.shape}")
    return np.array([png_size(np.transpose(x, (1, 2, 0))) for x in images], dtype=np.int64)


def complexity_bpd(images):
    """8 * png_bytes / (C * H * W) for uint8 [N, C, H, W]: the PNG's bits per dimension."""
    images = np.asarray(images)
    return 8.0 * png_sizes(images) / float(np.prod(images.shape[1:]))


# ---- check against the engine's own writer ------------------------------------------------

_HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "image.h"
/* stdin: n, h, w, c as text then n*h*w*c bytes (H, W, C interleaved); stdout: one size a line */
int main(void) {
    int n, h, w, c;
    if (scanf("%d %d %d %d", &n, &h, &w, &c) != 4) return 2;
    getchar();
    size_t sz = (size_t)h * w * c;
    unsigned char *buf = malloc(sz);
    for (int i = 0; i < n; i++) {
        if (fread(buf, 1, sz, stdin) != sz) return 3;
        uint8_t *png = NULL; size_t len = 0; sc_error err = {0};
        if (image_write_png_mem(buf, w, h, c, &png, &len, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 4;
        }
        printf("%zu\n", len);
        free(png);
    }
    return 0;
}
"""


def engine_png_sizes(images, root):
    """Sizes from engine/image.c's image_write_png_mem (compiled into a throwaway program)."""
    import os
    import subprocess
    import tempfile
    images = np.asarray(images, dtype=np.uint8)
    n, c, h, w = images.shape
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "h.c"), os.path.join(d, "h")
        with open(src, "w") as f:
            f.write(_HARNESS)
        eng = os.path.join(root, "engine")
        subprocess.run(["cc", "-O1", "-I", eng, src, os.path.join(eng, "image.c"),
                        os.path.join(eng, "err.c"), "-lpng", "-lz", "-lm", "-o", exe], check=True)
        payload = f"{n} {h} {w} {c}\n".encode() + np.transpose(images, (0, 2, 3, 1)).tobytes()
        p = subprocess.run([exe], input=payload, capture_output=True, check=True)
    return np.array([int(s) for s in p.stdout.split()], dtype=np.int64)


def server_complexity(url, model, images, timeout=600):
    """bits_per_dim - score from a running server's /anomaly (score "complexity"), i.e. the
    server's own PNG bits/dim, for uint8 [N, C, H, W] (sent as PNGs written by PIL)."""
    import base64
    import io
    import json
    import urllib.request
    from PIL import Image
    out = []
    for i in range(0, len(images), 64):
        pngs = []
        for x in images[i:i + 64]:
            hwc = np.transpose(x, (1, 2, 0))
            im = Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            pngs.append(base64.b64encode(buf.getvalue()).decode())
        body = json.dumps({"images": pngs, "score": "complexity", "threshold": 0}).encode()
        req = urllib.request.Request(f"{url}/v1/models/{model}/anomaly", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            res = json.load(r)["results"]
        out += [r["bits_per_dim"] - r["score"] for r in sorted(res, key=lambda r: r["index"])]
    return np.array(out)


def _check_server(url, model, per_set):
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import datasets
    import ood
    sets = {"fmnist-test": datasets.load_fashion_mnist("test")[0][:per_set, None]}
    for name in ood.NAMES:
        sets[name] = ood.load(name)[:per_set]
    worst = 0.0
    for name, x in sets.items():
        ours, srv = complexity_bpd(x), server_complexity(url, model, x)
        err = float(np.max(np.abs(ours - srv)))
        worst = max(worst, err)
        print(f"{name}: {len(x)} images, max |ours - server| = {err:.3g} bits/dim")
    # one byte is 8 / 784 = 0.0102 bits/dim; the server prints its numbers rounded
    print(f"worst {worst:.3g} bits/dim ({'agree' if worst < 1e-3 else 'DISAGREE'})")
    return 0 if worst < 1e-3 else 1


def _check():
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import datasets
    import ood
    sets = {"fmnist-test[:2000]": datasets.load_fashion_mnist("test")[0][:2000, None]}
    for name in ood.NAMES:
        sets[name] = ood.load(name)[:1000]
    sets["emoji-32 rgb[:500]"] = datasets.load_emoji32("all")[0][:500]
    total = bad = 0
    for name, x in sets.items():
        ours, eng = png_sizes(x), engine_png_sizes(x, os.path.dirname(here))
        miss = int((ours != eng).sum())
        total += len(x)
        bad += miss
        print(f"{name}: {len(x)} images, {miss} mismatches, mean {eng.mean():.1f} bytes")
    print(f"total {total} images, {bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(_check())
    if len(sys.argv) in (3, 4, 5) and sys.argv[1] == "--check-server":
        sys.exit(_check_server(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "fmnist-gmm",
                               int(sys.argv[4]) if len(sys.argv) > 4 else 8))
    print(__doc__.split("\n\n")[0])
    print("usage: python3 tools/png_complexity.py --check | --check-server URL [MODEL [N]]")
