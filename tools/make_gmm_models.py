#!/usr/bin/python3
"""Write the bundled analytic Gaussian-mixture ("gmm") score models.

Writes three JSON model files, byte-for-byte deterministic:

  gmm-2d.json      2-D, 8 modes on the unit ring, unequal weights, VP SDE
  gmm-2d-ve.json   the same mixture with a VE SDE (sigma 0.01..3)
  fmnist-gmm.json  [1, 28, 28], one component per Fashion-MNIST class
                   (training split), VP SDE

Run with Debian's Python and python3-numpy:

  /usr/bin/python3 tools/make_gmm_models.py [--out-dir models] [--fmnist-dir DIR]

The Fashion-MNIST IDX files come from the Debian package
dataset-fashion-mnist; the directory is found with `dpkg -L`.
"""

import argparse
import gzip
import json
import math
import os
import subprocess
import sys

try:
    import numpy as np
except ImportError:  # pragma: no cover - environment problem
    sys.stderr.write("error: numpy is missing; run with /usr/bin/python3 "
                     "(Debian python3-numpy)\n")
    sys.exit(1)

FMNIST_PACKAGE = "dataset-fashion-mnist"
FMNIST_FALLBACK_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FMNIST_STD_FLOOR = 0.02
FMNIST_STD_SCALE = 0.2

VP_SDE = {"type": "vp", "beta_min": 0.1, "beta_max": 20, "N": 1000}
VE_SDE_2D = {"type": "ve", "sigma_min": 0.01, "sigma_max": 3, "N": 1000}

SIG_DIGITS = 6


# ---------------------------------------------------------------- JSON output

def fmt_num(x):
    """A number as JSON text with 6 significant digits ("1", "0.5", "-0.998431")."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if not math.isfinite(x):
        raise ValueError("non-finite number %r" % x)
    if abs(x) < 1e-12:  # round-off such as cos(pi/2); also turns -0 into 0
        return "0"
    s = "%.*g" % (SIG_DIGITS, x)
    if "e" in s:  # JSON allows 1e-05, but keep the exponent tidy: 1e-5
        mant, exp = s.split("e")
        s = "%se%d" % (mant, int(exp))
    return s


def to_json(v):
    """Compact JSON with keys in insertion order and 6-significant-digit floats."""
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + to_json(x)
                              for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(to_json(x) for x in v) + "]"
    if isinstance(v, np.ndarray):
        return to_json(v.tolist())
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if v is None:
        return "null"
    return fmt_num(v)


def pretty_model_json(model):
    """One top-level key per line, so diffs stay readable; arrays stay compact."""
    lines = [json.dumps(k) + ":" + to_json(v) for k, v in model.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_model(path, model):
    text = pretty_model_json(model)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------ validation

def validate(path):
    """Re-read a written model file and check it; returns a short summary."""
    def fail(msg):
        raise SystemExit("error: %s: %s" % (path, msg))

    with open(path, "r", encoding="utf-8") as f:
        m = json.load(f)
    if m.get("kind") != "gmm":
        fail("kind is not \"gmm\"")
    if not isinstance(m.get("name"), str) or not m["name"]:
        fail("missing name")
    shape = m.get("shape")
    if (not isinstance(shape, list) or len(shape) not in (1, 3)
            or not all(isinstance(s, int) and s > 0 for s in shape)):
        fail("shape must be [D] or [C, H, W] of positive integers")
    D = int(np.prod(shape))
    sde = m.get("sde", {})
    if sde.get("type") in ("vp", "subvp"):
        if not 0 < sde.get("beta_min", -1) < sde.get("beta_max", -1):
            fail("bad beta_min/beta_max")
    elif sde.get("type") == "ve":
        if not 0 < sde.get("sigma_min", -1) < sde.get("sigma_max", -1):
            fail("bad sigma_min/sigma_max")
    else:
        fail("unknown sde type %r" % sde.get("type"))
    if not isinstance(sde.get("N"), int) or sde["N"] < 1:
        fail("sde.N must be a positive integer")
    if not isinstance(m.get("centered"), bool):
        fail("centered must be true or false")
    w = np.asarray(m.get("weights"), dtype=np.float64)
    K = w.shape[0] if w.ndim == 1 else 0
    if K < 1:
        fail("weights must be a non-empty array")
    if np.any(w <= 0):
        fail("weights must be positive")
    if abs(w.sum() - 1.0) > 1e-6:
        fail("weights sum to %.9g, not 1" % w.sum())
    mu = np.asarray(m.get("means"), dtype=np.float64)
    if mu.shape != (K, D):
        fail("means has shape %s, expected (%d, %d)" % (mu.shape, K, D))
    sd = np.asarray(m.get("stds"), dtype=np.float64)
    if sd.shape not in ((K, D), (K,)):
        fail("stds has shape %s, expected (%d, %d) or (%d,)" % (sd.shape, K, D, K))
    if not np.all(np.isfinite(mu)) or not np.all(np.isfinite(sd)):
        fail("non-finite means or stds")
    if np.any(sd <= 0):
        fail("stds must be > 0")
    labels = m.get("labels")
    if labels is not None and (len(labels) != K
                               or not all(isinstance(s, str) for s in labels)):
        fail("labels must be %d strings" % K)
    card = m.get("card")
    if card is not None and not isinstance(card, dict):
        fail("card must be an object")
    return {"K": K, "D": D, "shape": shape, "sde": sde["type"],
            "std_min": float(sd.min()), "std_max": float(sd.max())}


# --------------------------------------------------------------- the 2-D rings

def ring_mixture():
    K = 8
    ang = 2.0 * np.pi * np.arange(K) / K
    means = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    w = np.arange(1, K + 1, dtype=np.float64)
    w /= w.sum()
    stds = [0.1] * K
    labels = ["mode%d" % k for k in range(K)]
    return w, means, stds, labels


def ring_model(name, sde, sde_note):
    w, means, stds, labels = ring_mixture()
    return {
        "kind": "gmm",
        "name": name,
        "shape": [2],
        "sde": sde,
        "centered": True,
        "weights": w,
        "means": means,
        "stds": stds,
        "labels": labels,
        "card": {
            "description": ("Exact 2-D Gaussian mixture for tests and demos: 8 "
                            "isotropic modes (std 0.1) evenly spaced on the "
                            "circle of radius 1 around the origin, mode k at "
                            "angle 2*pi*k/8, with unequal weights "
                            "proportional to k+1 (1/36 .. 8/36) so that "
                            "samplers must recover the weights, not only "
                            "the mode locations. " + sde_note),
            "data": "synthetic; no data set",
            "how_made": "tools/make_gmm_models.py (deterministic)",
            "score": "analytic: the exact score of the mixture diffused by the SDE",
            # Per-sample Langevin step sizes are unreliable in 2 dimensions (the score norm
            # nears zero at a mode), so the default is predictor-only.
            "default_sampler": {"kind": "pc", "predictor": "reverse_diffusion",
                                "corrector": "none", "steps": 500},
        },
    }


# -------------------------------------------------------------- Fashion-MNIST

def detect_fmnist_dir():
    try:
        out = subprocess.run(["dpkg", "-L", FMNIST_PACKAGE],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True, check=False).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        base = os.path.basename(line)
        if base.startswith("train-images-idx3-ubyte"):
            return os.path.dirname(line)
    return FMNIST_FALLBACK_DIR


def find_idx(directory, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(directory, name)
        if os.path.isfile(p):
            return p
    return None


def read_idx(path):
    """Parse an IDX file (optionally gzip'd) of unsigned bytes."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError("%s: not an IDX file" % path)
    if data[2] != 0x08:
        raise ValueError("%s: IDX type 0x%02x, expected unsigned byte" % (path, data[2]))
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    off = 4 + 4 * ndim
    n = int(np.prod(dims))
    if len(data) - off != n:
        raise ValueError("%s: %d data bytes, header says %d" % (path, len(data) - off, n))
    return np.frombuffer(data, dtype=np.uint8, offset=off).reshape(dims)


def fmnist_model(fmnist_dir):
    img_path = find_idx(fmnist_dir, "train-images-idx3-ubyte")
    lab_path = find_idx(fmnist_dir, "train-labels-idx1-ubyte")
    if img_path is None or lab_path is None:
        sys.stderr.write("error: Fashion-MNIST training files not found in %s "
                         "(install the Debian package %s or pass --fmnist-dir)\n"
                         % (fmnist_dir, FMNIST_PACKAGE))
        sys.exit(1)
    try:
        images = read_idx(img_path)
        labels = read_idx(lab_path)
    except (OSError, ValueError, EOFError) as e:
        sys.stderr.write("error: cannot read Fashion-MNIST: %s\n" % e)
        sys.exit(1)
    if images.shape != (60000, 28, 28) or labels.shape != (60000,):
        sys.stderr.write("error: unexpected Fashion-MNIST training shapes %s, %s\n"
                         % (images.shape, labels.shape))
        sys.exit(1)

    x = images.reshape(60000, 784).astype(np.float64) * (2.0 / 255.0) - 1.0
    K = len(FMNIST_CLASSES)
    counts = np.bincount(labels, minlength=K).astype(np.float64)
    if counts.shape[0] != K or np.any(counts == 0):
        sys.stderr.write("error: Fashion-MNIST labels are not 0..9\n")
        sys.exit(1)
    weights = counts / counts.sum()
    means = np.empty((K, 784))
    stds = np.empty((K, 784))
    for k in range(K):
        xk = x[labels == k]
        means[k] = xk.mean(axis=0)
        stds[k] = np.maximum(FMNIST_STD_FLOOR, FMNIST_STD_SCALE * xk.std(axis=0))

    return {
        "kind": "gmm",
        "name": "fmnist-gmm",
        "shape": [1, 28, 28],
        "sde": dict(VP_SDE),
        "centered": True,
        "weights": weights,
        "means": means,
        "stds": stds,
        "labels": list(FMNIST_CLASSES),
        "card": {
            "description": ("Analytic Gaussian mixture over 28x28 grey images, "
                            "one diagonal Gaussian per Fashion-MNIST class. "
                            "Samples look like the class mean image with mild "
                            "texture. Gives picture samples, inpainting and "
                            "exact image likelihoods before any trained "
                            "network exists; not a model of the real data "
                            "distribution."),
            "data": ("Fashion-MNIST training split (60000 images), read from "
                     "the Debian package dataset-fashion-mnist "
                     "(train-images-idx3-ubyte, train-labels-idx1-ubyte); "
                     "Zalando SE, MIT licence."),
            "how_made": ("tools/make_gmm_models.py (deterministic). Pixels p "
                         "are mapped to 2*p/255 - 1 in [-1, 1]. mean = class "
                         "mean image; per-pixel std = max(0.02, 0.2 * class "
                         "per-pixel std), both in [-1, 1] units (population "
                         "std); weight = class frequency in the training "
                         "split; labels = the official class names."),
            "default_sampler": {"kind": "pc", "predictor": "reverse_diffusion",
                                "corrector": "none", "steps": 500},
        },
    }


# ------------------------------------------------------------------------ main

def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Write the bundled analytic Gaussian-mixture score models "
                    "(gmm-2d.json, gmm-2d-ve.json, fmnist-gmm.json).")
    ap.add_argument("--out-dir", default="models",
                    help="directory to write the model files to (default: models)")
    ap.add_argument("--fmnist-dir", default=None,
                    help="directory holding the Fashion-MNIST IDX files "
                         "(default: found with `dpkg -L %s`)" % FMNIST_PACKAGE)
    args = ap.parse_args(argv)

    fmnist_dir = args.fmnist_dir or detect_fmnist_dir()
    # Build everything first so a missing data set leaves no partial output.
    models = [
        ("gmm-2d.json", ring_model(
            "gmm-2d", dict(VP_SDE),
            "VP SDE, beta 0.1..20, N 1000.")),
        ("gmm-2d-ve.json", ring_model(
            "gmm-2d-ve", dict(VE_SDE_2D),
            "VE SDE, sigma 0.01..3: sigma_max about the largest pairwise "
            "distance of the data (ring diameter 2 plus the mode spread), "
            "following the score-SDE paper's rule, N 1000.")),
        ("fmnist-gmm.json", fmnist_model(fmnist_dir)),
    ]

    os.makedirs(args.out_dir, exist_ok=True)
    for fname, model in models:
        path = os.path.join(args.out_dir, fname)
        write_model(path, model)
        info = validate(path)
        print("%s: %d bytes, shape %s, sde %s, K %d, std %s..%s" % (
            path, os.path.getsize(path), info["shape"], info["sde"], info["K"],
            fmt_num(info["std_min"]), fmt_num(info["std_max"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
