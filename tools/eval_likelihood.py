"""Bits/dim of 8-bit images under a scored model, computed by the C engine, resumably.

The images are dequantized here with a fixed seed (x = (u8 + U[0,1)) / 256, then 2x - 1 for
centered models; the uniform noise for image i comes from numpy default_rng([seed, i]), so any
subset can be recomputed exactly), written as a .npy in model units and handed to
`scored likelihood` (probability-flow ODE, RK45, rtol = atol = 1e-5 unless told otherwise,
one Rademacher Hutchinson probe, the engine's default eps), one image per call with
`--seed i`: image i's probe comes from the engine's stream (i, 0) whatever the chunking, so
two runs at different tolerances are paired image by image.  (Rows written before this rule,
e.g. fmnist-vp-bpd.jsonl rows 88 and up, drew the probe from the image's position in an
8- or 4-image call instead: unbiased, but not paired with a run chunked differently.) The engine reports the continuous
log-density in nats; bits/dim = -nats / (D ln 2) + 8 - log2(2) for centered data (the
[-1, 1] scaling's Jacobian) or + 8 for [0, 1] data, the same formula as the engine's own
dequantized PNG path (spec 5).

Results are appended, one JSON object per image, to a .jsonl file as each chunk finishes:
    {"set": NAME, "index": i, "bits_per_dim": B, "log_likelihood_nats": L, "nfe": N}
Running again skips the (set, index) pairs already there, so a long evaluation can stop and
resume across sessions (commit the .jsonl as it grows).

    /usr/bin/python3 tools/eval_likelihood.py --model models/fmnist-vp.safetensors \
        --set fmnist-test --n 1000 --out tools/results/fmnist-vp-bpd.jsonl [--minutes 60] \
        [--shard 0/2 & the same with --shard 1/2: one process per core]

Sets: fmnist-test (Fashion-MNIST test split, in order), emoji-test (emoji-32 held out),
and the out-of-distribution sets of tools/ood.py (see there).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import datasets  # noqa: E402

ROOT = os.path.dirname(HERE)


def dequantize(u8, indices, seed, centered):
    """uint8 [n, C, H, W] -> float32 model units; image i's noise from rng([seed, i])."""
    out = np.empty(u8.shape, dtype=np.float64)
    for k, i in enumerate(indices):
        u = np.random.default_rng([seed, int(i)]).random(u8.shape[1:])
        out[k] = (u8[k].astype(np.float64) + u) / 256.0
    if centered:
        out = 2.0 * out - 1.0
    return out.astype(np.float32)


def bits_per_dim(nats, D, centered):
    return -nats / (D * math.log(2.0)) + (7.0 if centered else 8.0)


def read_done(path):
    done = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    r = json.loads(line)
                    done[(r["set"], r["index"])] = r
    return done


def run_chunk(scored, model, x, idx, rtol, atol, threads):
    """Per-item (nats, nfe) of float32 [n, C, H, W] from `scored likelihood`, item k with
    --seed idx[k] (its probe keyed by its index in the set)."""
    out = []
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.npy")
        for xi, i in zip(x, idx):
            np.save(path, xi[None])
            p = subprocess.run([scored, "likelihood", "--model", model, "--input", path,
                                "--rtol", repr(rtol), "--atol", repr(atol), "--seed", str(int(i)),
                                "--threads", str(threads)],
                               capture_output=True, text=True, env=env)
            if p.returncode != 0:
                raise RuntimeError(f"scored likelihood failed ({p.returncode}): {p.stderr.strip()}")
            rows = [json.loads(s) for s in p.stdout.splitlines() if s.strip()]
            if len(rows) != 1:
                raise RuntimeError(f"scored likelihood printed {len(rows)} rows for 1 item")
            out.append((rows[0]["log_likelihood_nats"], rows[0]["nfe"]))
    return out


def load_set(name):
    """uint8 [N, C, H, W] images of an evaluation set."""
    if name == "fmnist-test":
        x, _ = datasets.load_fashion_mnist("test")
        return x[:, None]
    if name == "emoji-test":
        return datasets.load_emoji32("test")[0]
    import ood
    return ood.load(name)


def evaluate(model, set_name, n, out, scored=None, seed=0, chunk=8, rtol=1e-5, atol=1e-5,
             minutes=None, threads=1, centered=None, log=print, shard=(0, 1)):
    """Appends up to n results of set_name (its first n images; with shard (k, m) only those
    whose index is k mod m) to out; returns all rows of that set in out after the run."""
    scored = scored or os.path.join(ROOT, "scored")
    if centered is None:
        import nets
        centered = bool(nets.load_model_file(model)[1]["centered"]) if model.endswith(
            ".safetensors") else True
    images = load_set(set_name)[:n]
    D = int(np.prod(images.shape[1:]))
    done = read_done(out)
    todo = [i for i in range(len(images)) if (set_name, i) not in done and i % shard[1] == shard[0]]
    t0 = time.time()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    for c in range(0, len(todo), chunk):
        if minutes is not None and time.time() - t0 > 60 * minutes:
            log(f"eval_likelihood: --minutes {minutes:g} reached; {len(todo) - c} left")
            break
        idx = todo[c:c + chunk]
        x = dequantize(images[idx], idx, seed, centered)
        res = run_chunk(scored, model, x, idx, rtol, atol, threads)
        text = "".join(json.dumps({"set": set_name, "index": int(i),
                                   "bits_per_dim": round(bits_per_dim(nats, D, centered), 6),
                                   "log_likelihood_nats": nats, "nfe": nfe}) + "\n"
                       for i, (nats, nfe) in zip(idx, res))
        fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, text.encode())  # one append: shards sharing the file never interleave
        finally:
            os.close(fd)
        el = time.time() - t0
        log(f"eval_likelihood: {set_name} {c + len(idx)}/{len(todo)} done, "
            f"{el / (c + len(idx)):.1f} s/image")
    rows = [r for (s, _), r in read_done(out).items() if s == set_name]
    return sorted(rows, key=lambda r: r["index"])


def summary(rows):
    b = np.array([r["bits_per_dim"] for r in rows])
    if len(b) == 0:
        return {"n": 0}
    return {"n": int(len(b)), "bits_per_dim_mean": round(float(b.mean()), 4),
            "bits_per_dim_se": round(float(b.std(ddof=1) / math.sqrt(len(b))), 4) if len(b) > 1 else None,
            "nfe_mean": round(float(np.mean([r["nfe"] for r in rows])), 1)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--set", default="fmnist-test")
    ap.add_argument("--n", type=int, default=1000, help="the set's first n images")
    ap.add_argument("--out", required=True, help=".jsonl results file (appended, resumable)")
    ap.add_argument("--seed", type=int, default=0, help="dequantization seed")
    ap.add_argument("--chunk", type=int, default=8, help="images per `scored likelihood` call")
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--threads", type=int, default=1, help="scored's --threads (and OPENBLAS_NUM_THREADS)")
    ap.add_argument("--minutes", type=float, help="stop after this long (resume later)")
    ap.add_argument("--scored", help="the scored binary (default ./scored)")
    ap.add_argument("--shard", default="0/1", help="K/M: only the images whose index is K mod M, so M "
                    "processes (one per core) can share a set and one --out file (each chunk is "
                    "appended in one write)")
    a = ap.parse_args(argv)
    try:
        k, m = (int(v) for v in a.shard.split("/"))
        if not 0 <= k < m:
            raise ValueError
    except ValueError:
        print(f"eval_likelihood: --shard {a.shard!r}: want K/M with 0 <= K < M", file=sys.stderr)
        return 2
    try:
        rows = evaluate(a.model, a.set, a.n, a.out, scored=a.scored, seed=a.seed, chunk=a.chunk,
                        rtol=a.rtol, atol=a.atol, minutes=a.minutes, threads=a.threads,
                        shard=(k, m))
    except (datasets.DatasetMissing, RuntimeError, OSError, ValueError) as e:
        print(f"eval_likelihood: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"set": a.set, **summary(rows)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
