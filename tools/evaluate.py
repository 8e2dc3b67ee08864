"""Measured quality of scored models: FID, label agreement, guidance accuracy, anomaly AUROC.

Each subcommand prints one JSON line on stdout (progress goes to stderr) and exits 1 with a
one-line error on bad input; everything runs on one thread.

    train-eval-classifier   train the Fashion-MNIST evaluation CNN (FID features, agreement)
    make-emoji-features     write the fixed random-feature CNN used for emoji FID
    sample                  draw samples with ./scored in resumable chunks (+ sidecar .json)
    fid                     FID of samples and the real-vs-real floor at the same n
    fid-check               FID/floor of degraded real images: how sensitive the features are
    agreement               share of samples the evaluation CNN puts in the requested class
    guidance-accuracy       accuracy of a noise-conditional guidance classifier on test images
    anomaly                 AUROC of bits/dim and of the complexity-corrected score per OOD set

See tools/README.md, section "Evaluation", for the definitions and the commands used.
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import datasets  # noqa: E402

SEED_STRIDE = 100000  # chunk k of `sample --seed S` uses scored's --seed S * SEED_STRIDE + k


class EvalError(Exception):
    pass


# ---- pure functions ---------------------------------------------------------------------------

def samples_to_u8(x, centered):
    """float [N,C,H,W] in model units -> uint8 as the engine writes PNGs: v = (x+1)/2 when
    centered else x, then floor(clip(v, 0, 1) * 255 + 0.5), NaN -> 0."""
    v = np.asarray(x, dtype=np.float64)
    if centered:
        v = (v + 1.0) / 2.0
    v = np.nan_to_num(v, nan=0.0)
    return np.floor(np.clip(v, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def gaussian_stats(feats):
    f = np.asarray(feats, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False, ddof=1).reshape(f.shape[1], f.shape[1])


def frechet_distance(mu1, s1, mu2, s2):
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), via symmetric eigensolves."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(s1, np.float64), np.asarray(s2, np.float64)
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = r1 @ s2 @ r1
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2.0 * cross)


def fid_from_features(f1, f2):
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))


def auroc(neg, pos):
    """P(score of a positive > score of a negative) + 0.5 P(tie): positives are anomalies."""
    neg, pos = np.asarray(neg, np.float64), np.asarray(pos, np.float64)
    if len(neg) == 0 or len(pos) == 0:
        raise EvalError("AUROC needs at least one score on each side")
    allv = np.concatenate([neg, pos])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv))
    sv = allv[order]
    i = 0
    while i < len(sv):                      # average ranks over ties
        j = i
        while j + 1 < len(sv) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    rp = ranks[len(neg):].sum()
    return float((rp - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg)))


def threshold_fpr(scores, q):
    """(threshold = q-quantile of the first half, FPR = share of the second half above it)."""
    s = np.asarray(scores, np.float64)
    h = len(s) // 2
    if h < 1:
        raise EvalError("need at least 2 in-distribution scores for a threshold and its FPR")
    thr = float(np.quantile(s[:h], q))
    return thr, float(np.mean(s[h:2 * h] > thr))


def label_index(label):
    names = [n.lower() for n in datasets.FMNIST_LABELS]
    s = str(label).strip()
    if re.fullmatch(r"\d+", s) and int(s) < len(names):
        return int(s)
    if s.lower() in names:
        return names.index(s.lower())
    raise EvalError(f"label {label!r} is not 0..9 or one of {', '.join(datasets.FMNIST_LABELS)}")


# ---- sample files -----------------------------------------------------------------------------

def sidecar_path(npy):
    return os.path.splitext(npy)[0] + ".json"


def load_samples(path, units="auto"):
    """(float32 [N,C,H,W], centered bool, how the units were decided)."""
    if not os.path.isfile(path):
        raise EvalError(f"{path} does not exist")
    try:
        x = np.load(path)
    except (ValueError, OSError) as e:
        raise EvalError(f"{path}: not a .npy array ({e})") from None
    if x.ndim != 4 or x.dtype.kind != "f":
        raise EvalError(f"{path}: expected float [N, C, H, W], got {x.dtype} {list(x.shape)}")
    if units == "centered":
        return x, True, "--units centered"
    if units == "unit":
        return x, False, "--units unit"
    side = sidecar_path(path)
    if os.path.isfile(side):
        with open(side) as f:
            c = json.load(f).get("centered")
        if isinstance(c, bool):
            return x, c, f"sidecar {os.path.basename(side)}"
    c = bool(np.nanmin(x) < -0.5)
    return x, c, f"guessed from the range (min {float(np.nanmin(x)):.2f})"


# ---- fid ----------------------------------------------------------------------------------------

def reference_sets(dataset, n, seed):
    """(reference u8, floor u8, description): the floor set plays the samples' role."""
    if dataset == "fashion-mnist":
        test, _ = datasets.load_fashion_mnist("test")
        train, _ = datasets.load_fashion_mnist("train")
        if n > len(test):
            raise EvalError(f"--n {n} is more than the {len(test)} test images")
        pick = np.random.default_rng(seed).choice(len(train), n, replace=False)
        return (test[:n, None], train[np.sort(pick), None],
                f"reference: test images 0..{n - 1}; floor: {n} training images drawn with "
                f"seed {seed}")
    if dataset == "emoji-32":
        allx, _ = datasets.load_emoji32("all")
        if 2 * n > len(allx):
            raise EvalError(f"--n {n}: emoji-32 has {len(allx)} images, so at most "
                            f"{len(allx) // 2} per side")
        perm = np.random.default_rng(seed).permutation(len(allx))
        return (allx[np.sort(perm[:n])], allx[np.sort(perm[n:2 * n])],
                f"reference: {n} of all {len(allx)} emoji (train and test splits) drawn with "
                f"seed {seed}; floor: {n} other emoji from the same draw")
    raise EvalError(f"unknown dataset {dataset!r} (fashion-mnist or emoji-32)")


def cmd_fid(a):
    import eval_features
    x, centered, how = load_samples(a.samples, a.units)
    shape = {"fashion-mnist": (1, 28, 28), "emoji-32": (3, 32, 32)}.get(a.dataset)
    if shape is None:
        raise EvalError(f"unknown dataset {a.dataset!r} (fashion-mnist or emoji-32)")
    if tuple(x.shape[1:]) != shape:
        raise EvalError(f"{a.samples}: samples are {list(x.shape[1:])}, {a.dataset} is {list(shape)}")
    n = a.n
    if n is None:
        n = 2000 if a.dataset == "fashion-mnist" else len(datasets.load_emoji32("all")[0]) // 2
    if n < 2:
        raise EvalError("--n must be at least 2")
    if len(x) < n:
        raise EvalError(f"{a.samples} has {len(x)} samples, fewer than --n {n}")
    ref, floor_set, ref_desc = reference_sets(a.dataset, n, a.seed)
    desc, feat = eval_features.feature_fn(a.dataset)
    f_ref = feat(ref)
    fid = fid_from_features(feat(samples_to_u8(x[:n], centered)), f_ref)
    floor = fid_from_features(feat(floor_set), f_ref)
    row = {"fid": round(fid, 4), "floor": round(floor, 4),
           "ratio": round(fid / floor, 3) if floor > 0 else None, "n": n,
           "dataset": a.dataset, "samples": a.samples, "units": ("centered" if centered else "unit")
           + f" ({how})", "features": desc, "reference": ref_desc}
    row.update(sampler_of_samples(a.samples))
    return row


def summary_number(summary, key):
    """A number from `scored sample`'s one-line summary ("... eps=0.001 ... mean_nfe=100.0
    seconds=29.9 ..."), None if the line has no such field."""
    hit = re.search(rf"(?:^|\s){re.escape(key)}=([0-9.eE+-]+)(?=\s|$)", summary or "")
    return float(hit.group(1)) if hit else None


def effective_eps(summary):
    """The eps the engine used: the sampler arguments alone do not fix it, since its default
    depends on the sampler and step count."""
    return summary_number(summary, "eps")


def sampler_of_samples(path):
    """The model, sampler, eps used and mean NFE from the samples' sidecar, {} without one: an
    FID row carries them itself, since runs/ (where samples and sidecars live) is not kept."""
    side = sidecar_path(path)
    if not os.path.isfile(side):
        return {}
    with open(side) as f:
        s = json.load(f)
    return {k: v for k, v in (("model", s.get("model")),
                              ("sampler", " ".join(s.get("sampler_args") or [])),
                              ("eps", effective_eps(s.get("summary_chunk0"))),
                              ("nfe", s.get("mean_nfe"))) if v not in (None, "")}


def degrade(u8, kind, seed=0):
    """Deterministic degradations of uint8 [N,C,H,W] images for `fid-check`."""
    from PIL import Image, ImageFilter
    x = np.asarray(u8)
    if kind == "blur":
        out = np.empty_like(x)
        for i, im in enumerate(x):
            hwc = np.transpose(im, (1, 2, 0))
            pim = Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
            b = np.asarray(pim.filter(ImageFilter.GaussianBlur(1)))
            out[i] = b[None] if b.ndim == 2 else np.transpose(b, (2, 0, 1))
        return out
    if kind.startswith("noise-"):
        z = np.random.default_rng(seed).standard_normal(x.shape) * float(kind[6:])
        return np.clip(np.rint(x + z), 0, 255).astype(np.uint8)
    if kind == "shift-2":
        out = np.zeros_like(x)
        out[:, :, 2:, 2:] = x[:, :, :-2, :-2]
        return out
    if kind == "posterize-4":
        return (x // 64 * 85).astype(np.uint8)
    if kind == "half-res":
        n, c, h, w = x.shape
        small = x.reshape(n, c, h // 2, 2, w // 2, 2).astype(np.float64).mean(axis=(3, 5))
        return np.rint(small).astype(np.uint8).repeat(2, axis=2).repeat(2, axis=3)
    if kind == "gray":
        g = np.rint(x[:, :1] * 0.299 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114).astype(np.uint8)
        return np.repeat(g, 3, axis=1)
    if kind == "bgr":
        return np.ascontiguousarray(x[:, ::-1])
    raise EvalError(f"unknown degradation {kind!r}")


def cmd_fid_check(a):
    """FID / floor of the floor set after fixed degradations: how sensitive the features are."""
    import eval_features
    n = a.n or (2000 if a.dataset == "fashion-mnist" else len(datasets.load_emoji32("all")[0]) // 2)
    ref, floor_set, ref_desc = reference_sets(a.dataset, n, a.seed)
    desc, feat = eval_features.feature_fn(a.dataset)
    f_ref = feat(ref)
    floor = fid_from_features(feat(floor_set), f_ref)
    kinds = ["blur", "noise-8", "noise-32", "shift-2", "posterize-4", "half-res"]
    if a.dataset == "emoji-32":
        kinds += ["gray", "bgr"]
    ratios = {k: round(fid_from_features(feat(degrade(floor_set, k, a.seed)), f_ref) / floor, 2)
              for k in kinds}
    return {"dataset": a.dataset, "n": n, "floor": round(floor, 4), "ratio_to_floor": ratios,
            "features": desc, "reference": ref_desc}


# ---- agreement ----------------------------------------------------------------------------------

def cmd_agreement(a):
    import eval_features
    k = label_index(a.label)
    x, centered, how = load_samples(a.samples, a.units)
    if tuple(x.shape[1:]) != (1, 28, 28):
        raise EvalError(f"{a.samples}: samples are {list(x.shape[1:])}, expected [1, 28, 28]")
    model, meta = eval_features.load_fmnist_cnn()
    pred = eval_features.predict(model, samples_to_u8(x, centered)).argmax(1)
    counts = np.bincount(pred, minlength=10)
    return {"label": datasets.FMNIST_LABELS[k], "label_index": k, "n": int(len(x)),
            "agreement": round(float(np.mean(pred == k)), 4),
            "predicted_counts": counts.tolist(), "samples": a.samples,
            "units": ("centered" if centered else "unit") + f" ({how})",
            "classifier": f"fmnist-eval-cnn (test accuracy {meta.get('test_accuracy')})"}


# ---- guidance classifier ------------------------------------------------------------------------

def cmd_guidance_accuracy(a):
    import torch
    import nets
    if not os.path.isfile(a.classifier):
        raise EvalError(f"{a.classifier} does not exist")
    try:
        model, meta = nets.load_model_file(a.classifier)
    except (ValueError, KeyError, OSError) as e:
        raise EvalError(f"{a.classifier}: {e}") from None
    if meta.get("kind") != "classifier":
        raise EvalError(f"{a.classifier} is a {meta.get('kind')!r} file, not a classifier")
    if list(meta["shape"]) != [1, 28, 28]:
        raise EvalError(f"{a.classifier}: shape {meta['shape']}, expected [1, 28, 28]")
    sde = meta.get("sde") or {}
    if sde.get("type") not in ("ve", "vp", "subvp"):
        raise EvalError(f"{a.classifier}: metadata has no usable sde ({sde!r})")
    test, y = datasets.load_fashion_mnist("test")
    n = min(a.n, len(test))
    x0 = torch.from_numpy(test[:n, None].astype(np.float32) / 255.0)
    if meta["centered"]:
        x0 = 2 * x0 - 1
    out = {"classifier": a.classifier, "n": n, "sde": sde["type"], "results": []}
    gen = torch.Generator().manual_seed(a.seed)
    for t in a.t:
        noisy = t > a.t_clean
        sigma = nets.marginal_std(sde, torch.tensor([float(t)], dtype=torch.float64)).float()
        pred = nets.classifier_predictions(model, sde, x0, t, gen if noisy else None, a.batch).numpy()
        per_class = [round(float(np.mean(pred[y[:n] == c] == c)), 4) if np.any(y[:n] == c) else None
                     for c in range(10)]
        out["results"].append({"t": t, "sigma": round(float(sigma[0]), 6), "noised": bool(noisy),
                               "accuracy": round(float(np.mean(pred == y[:n])), 4),
                               "per_class": per_class})
    out["accuracy"] = out["results"][0]["accuracy"]
    return out


# ---- anomaly ------------------------------------------------------------------------------------

def read_bpd_rows(paths):
    rows = {}
    for p in paths:
        if not os.path.isfile(p):
            raise EvalError(f"{p} does not exist")
        with open(p) as f:
            for ln, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    r = json.loads(line)
                    rows[(r["set"], int(r["index"]))] = float(r["bits_per_dim"])
                except (ValueError, KeyError, TypeError):
                    raise EvalError(f"{p}:{ln}: not a bits/dim row") from None
    return rows


def set_scores(rows, name, images_of):
    """(indices, bpd, complexity-corrected score) of one set, in index order."""
    import png_complexity
    idx = sorted(i for (s, i) in rows if s == name)
    if not idx:
        raise EvalError(f"no rows for set {name!r} in the input")
    imgs = images_of(name)
    if idx[-1] >= len(imgs):
        raise EvalError(f"set {name!r}: index {idx[-1]} but the set has {len(imgs)} images")
    bpd = np.array([rows[(name, i)] for i in idx])
    png = png_complexity.complexity_bpd(imgs[idx])
    return np.array(idx), bpd, bpd - png, png


def histogram(scores, bins=24):
    """The in-distribution scores as {"edges": [bins + 1], "counts": [bins]} for model cards
    (the web page draws it): equal-width bins over [min, max], 4 decimals."""
    counts, edges = np.histogram(np.asarray(scores, dtype=np.float64), bins=bins)
    return {"edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}


def cmd_anomaly(a):
    import eval_likelihood
    if not 0 < a.quantile < 1:
        raise EvalError("--quantile must be in (0, 1)")
    rows = read_bpd_rows(a.inputs)
    ood_names = [s for s in a.ood_sets.split(",") if s]  # none: calibrate thresholds only
    cache = {}

    def images_of(name):
        if name not in cache:
            try:
                cache[name] = eval_likelihood.load_set(name)
            except ValueError as e:
                raise EvalError(str(e)) from None
        return cache[name]

    _, in_bpd, in_cx, in_png = set_scores(rows, a.in_set, images_of)
    out = {"in_set": a.in_set, "n_in": int(len(in_bpd)),
           "in_mean": {"bpd": round(float(in_bpd.mean()), 4),
                       "png_bpd": round(float(in_png.mean()), 4),
                       "complexity": round(float(in_cx.mean()), 4)},
           "ood": {}}
    means = {"bpd": [], "complexity": []}
    for name in ood_names:
        _, bpd, cx, png = set_scores(rows, name, images_of)
        r = {"n": int(len(bpd)), "auroc_bpd": round(auroc(in_bpd, bpd), 4),
             "auroc_complexity": round(auroc(in_cx, cx), 4),
             "mean_bpd": round(float(bpd.mean()), 4), "mean_png_bpd": round(float(png.mean()), 4)}
        out["ood"][name] = r
        means["bpd"].append(r["auroc_bpd"])
        means["complexity"].append(r["auroc_complexity"])
    mean_auc = {k: round(float(np.mean(v)), 4) for k, v in means.items() if v}
    better = "complexity" if mean_auc and mean_auc["complexity"] > mean_auc["bpd"] else "bpd"
    out["mean_auroc"] = mean_auc
    out["better"] = better
    h = len(in_bpd) // 2
    thr = {}
    for k, s in (("bpd", in_bpd), ("complexity", in_cx)):
        t, fpr = threshold_fpr(s, a.quantile)
        thr[k] = {"threshold": round(t, 4), "fpr_held_out": round(fpr, 4),
                  "quantiles": {f"{q:g}": round(float(np.quantile(s[:h], q)), 4)
                                for q in (0.9, 0.95, 0.99)}}
    out["thresholds"] = {"quantile": a.quantile, "calibration": f"{a.in_set} rows 0..{h - 1} "
                         f"(in index order)", "held_out": f"rows {h}..{2 * h - 1}", **thr}
    for k, sc in (("bpd", in_bpd), ("complexity", in_cx)):
        thr[k]["histogram"] = histogram(sc)
    if a.card_out:
        card = {"anomaly": {
            "score": better, "threshold": thr[better]["threshold"], "threshold_quantile": a.quantile,
            "quantiles": thr[better]["quantiles"], "fpr_held_out": thr[better]["fpr_held_out"],
            "histogram": thr[better]["histogram"],
            "scores": {k: {"threshold": v["threshold"], "quantiles": v["quantiles"],
                           "fpr_held_out": v["fpr_held_out"], "histogram": v["histogram"]}
                       for k, v in thr.items()},
            "auroc": {k: {"bpd": v["auroc_bpd"], "complexity": v["auroc_complexity"], "n": v["n"]}
                      for k, v in out["ood"].items()},
            "how_made": (f"tools/evaluate.py anomaly: bits/dim rows of {', '.join(a.inputs)} "
                         f"(tools/eval_likelihood.py); {a.in_set} images with {len(in_bpd)} rows; "
                         + (f"score {better} (higher mean AUROC over {', '.join(ood_names)}); "
                            if ood_names else "score bpd (no out-of-distribution sets measured); ") +
                         f"threshold = the {a.quantile:g} quantile of the first {h} in-distribution "
                         f"rows, false-positive rate on the next {h}")}}
        with open(a.card_out, "w") as f:
            json.dump(card, f, indent=1)
        out["card_out"] = a.card_out
    return out


# ---- sample -------------------------------------------------------------------------------------

def model_centered(model):
    """data.centered of a model file (or a name scored resolves in models/); None if unknown."""
    import safetensors_io
    for p in [model] + [os.path.join(ROOT, "models", model + e) for e in (".json", ".safetensors")]:
        if not os.path.isfile(p):
            continue
        if p.endswith(".safetensors"):
            meta = json.loads(safetensors_io.read_header(p)[1].get("scored", "{}"))
        else:
            with open(p) as f:
                meta = json.load(f)
        c = meta.get("centered") if isinstance(meta, dict) else None
        return c if isinstance(c, bool) else None
    return None


def cmd_sample(a):
    scored = a.scored or os.path.join(ROOT, "scored")
    if not os.access(scored, os.X_OK):
        raise EvalError(f"{scored} is not an executable (run make)")
    if a.n < 1 or a.chunk < 1:
        raise EvalError("--n and --chunk must be positive")
    nchunks = -(-a.n // a.chunk)
    if nchunks > SEED_STRIDE:
        raise EvalError(f"at most {SEED_STRIDE} chunks")
    extra = shlex.split(a.sampler_args)
    for bad in ("--model", "--out", "--n", "--seed", "--label", "--guidance"):
        if bad in extra:
            raise EvalError(f"--sampler-args may not contain {bad} (evaluate.py sets it)")
    cond = []
    if a.label is not None:
        cond += ["--label", str(a.label)]
    if a.guidance is not None:
        if a.label is None:
            raise EvalError("--guidance needs --label")
        cond += ["--guidance", repr(a.guidance)]
    config = {"model": a.model, "sampler_args": extra, "label": a.label, "guidance": a.guidance,
              "chunk": a.chunk, "seed": a.seed}
    cdir = os.path.splitext(a.out)[0] + ".chunks"
    os.makedirs(cdir, exist_ok=True)
    cfile = os.path.join(cdir, "config.json")
    if os.path.isfile(cfile):
        with open(cfile) as f:
            old = json.load(f)
        if old != config:
            raise EvalError(f"{cdir} holds chunks of a different run ({old}); remove it or "
                            f"choose another --out")
    else:
        with open(cfile, "w") as f:
            json.dump(config, f)
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads))
    t0 = time.time()
    parts, meta = [], []
    for k in range(nchunks):
        m = min(a.chunk, a.n - k * a.chunk)
        path = os.path.join(cdir, f"chunk-{k:05d}.npy")
        info = path[:-4] + ".json"
        seed = a.seed * SEED_STRIDE + k
        if not (os.path.isfile(path) and os.path.isfile(info) and len(np.load(path)) == m):
            cmd = [scored, "sample", "--model", a.model, "--n", str(m), "--seed", str(seed),
                   "--threads", str(a.threads), "--out", path + ".tmp.npy"] + extra + cond
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if p.returncode != 0:
                raise EvalError(f"scored sample failed ({p.returncode}): "
                                f"{p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ''}")
            nfe, secs = summary_number(p.stderr, "mean_nfe"), summary_number(p.stderr, "seconds")
            if nfe is None or secs is None:
                raise EvalError(f"no mean_nfe in scored's summary: {p.stderr.strip()}")
            os.replace(path + ".tmp.npy", path)
            with open(info, "w") as f:
                json.dump({"n": m, "seed": seed, "mean_nfe": nfe,
                           "seconds": secs, "summary": p.stderr.strip(),
                           "command": " ".join(shlex.quote(c) for c in cmd)}, f)
            print(f"evaluate sample: chunk {k + 1}/{nchunks} done ({secs:.1f} s)",
                  file=sys.stderr)
        parts.append(np.load(path))
        with open(info) as f:
            meta.append(json.load(f))
    x = np.concatenate(parts)
    np.save(a.out, x)
    centered = model_centered(a.model)
    nfe = sum(c["mean_nfe"] * c["n"] for c in meta) / a.n
    side = {"samples": a.out, "n": int(len(x)), "shape": list(x.shape[1:]), "model": a.model,
            "centered": centered, "sampler_args": extra, "label": a.label,
            "guidance": a.guidance, "seed": a.seed, "chunk": a.chunk,
            "chunk_seeds": f"--seed {a.seed}*{SEED_STRIDE} + k for chunk k",
            "mean_nfe": round(nfe, 2), "engine_seconds": round(sum(c["seconds"] for c in meta), 2),
            "command_chunk0": meta[0]["command"], "summary_chunk0": meta[0]["summary"],
            "evaluate_command": " ".join(shlex.quote(s) for s in sys.argv)}
    with open(sidecar_path(a.out), "w") as f:
        json.dump(side, f, indent=1)
    return {"out": a.out, "n": int(len(x)), "mean_nfe": side["mean_nfe"],
            "engine_seconds": side["engine_seconds"], "wall_seconds": round(time.time() - t0, 1),
            "sidecar": sidecar_path(a.out)}


# ---- feature extractors -------------------------------------------------------------------------

def cmd_train_eval_classifier(a):
    import eval_features
    xtr, ytr = datasets.load_fashion_mnist("train")
    xte, yte = datasets.load_fashion_mnist("test")
    cfg = {"seed": a.seed}
    if a.epochs is not None:
        cfg["epochs"] = a.epochs
    if a.limit:
        xtr, ytr = xtr[:a.limit], ytr[:a.limit]
        cfg["train_images"] = a.limit
    model, info = eval_features.train_fmnist_cnn(
        xtr, ytr, xte, yte, cfg, log=lambda s: print(s, file=sys.stderr, flush=True))
    info["command"] = " ".join(shlex.quote(s) for s in sys.argv)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    eval_features.save_fmnist_cnn(model, a.out, info)
    return {"out": a.out, "test_accuracy": info["test_accuracy"], "minutes": info["minutes"],
            "steps": info["steps"]}


def cmd_make_emoji_features(a):
    import eval_features
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    eval_features.save_random_cnn(a.out, a.seed)
    return {"out": a.out, "seed": a.seed, "bytes": os.path.getsize(a.out)}


# ---- command line -------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        print(f"evaluate: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser():
    import eval_features
    ap = _Parser(prog="evaluate.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    p = sub.add_parser("train-eval-classifier", help="train the Fashion-MNIST evaluation CNN")
    p.add_argument("--out", default=eval_features.FMNIST_CNN)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help=f"default {eval_features.FMNIST_TRAIN['epochs']}")
    p.add_argument("--limit", type=int, help="train on the first N training images (tests only)")
    p.set_defaults(fn=cmd_train_eval_classifier)

    p = sub.add_parser("make-emoji-features", help="write the emoji random-feature CNN")
    p.add_argument("--out", default=eval_features.EMOJI_NET)
    p.add_argument("--seed", type=int, default=eval_features.EMOJI_SEED)
    p.set_defaults(fn=cmd_make_emoji_features)

    units = dict(choices=["auto", "centered", "unit"], default="auto",
                 help="sample units: centered [-1,1] or unit [0,1] (auto: the sidecar .json, "
                      "else min < -0.5 means centered)")
    p = sub.add_parser("fid", help="FID of samples and the real-vs-real floor")
    p.add_argument("--samples", required=True)
    p.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "emoji-32"])
    p.add_argument("--n", type=int, help="samples and reference images (default 2000; "
                                         "emoji: half the emoji set)")
    p.add_argument("--seed", type=int, default=0, help="draw of the floor/reference sets")
    p.add_argument("--units", **units)
    p.set_defaults(fn=cmd_fid)

    p = sub.add_parser("fid-check", help="FID/floor of degraded real images (feature sensitivity)")
    p.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "emoji-32"])
    p.add_argument("--n", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_fid_check)

    p = sub.add_parser("agreement", help="share of samples classified as --label")
    p.add_argument("--samples", required=True)
    p.add_argument("--label", required=True, help="class index 0..9 or Fashion-MNIST name")
    p.add_argument("--units", **units)
    p.set_defaults(fn=cmd_agreement)

    p = sub.add_parser("guidance-accuracy", help="test accuracy of a guidance classifier")
    p.add_argument("--classifier", required=True)
    p.add_argument("--n", type=int, default=10000, help="first n test images")
    p.add_argument("--t", type=lambda s: [float(v) for v in s.split(",")], default=[1e-5],
                   help="comma-separated times; t above --t-clean also noises x to x_t "
                        "(fixed seed); the first is the headline accuracy")
    p.add_argument("--t-clean", type=float, default=1e-5,
                   help="at or below this t the image is fed clean (default 1e-5)")
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_guidance_accuracy)

    p = sub.add_parser("anomaly", help="AUROC per OOD set for bits/dim and complexity")
    p.add_argument("--in", dest="inputs", action="append", required=True,
                   help=".jsonl of tools/eval_likelihood.py (repeatable)")
    p.add_argument("--in-set", default="fmnist-test")
    p.add_argument("--ood-sets", default="emoji-gray,fmnist-vflip,uniform-noise,constant")
    p.add_argument("--quantile", type=float, default=0.99)
    p.add_argument("--card-out", help="also write {\"anomaly\": ...} (default score: the better "
                                      "one; both calibrated under scores.<score>), for "
                                      "tools/model_meta.py set M --card-file FILE")
    p.set_defaults(fn=cmd_anomaly)

    p = sub.add_parser("sample", help="draw samples with ./scored in resumable chunks")
    p.add_argument("--model", required=True)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--out", required=True, help=".npy (chunks in <out>.chunks/, sidecar <out>.json)")
    p.add_argument("--sampler-args", default="", help='e.g. "--sampler ode --solver heun --steps 50"')
    p.add_argument("--chunk", type=int, default=50)
    p.add_argument("--seed", type=int, default=0, help="base seed")
    p.add_argument("--label")
    p.add_argument("--guidance", type=float)
    p.add_argument("--threads", type=int, default=1, help="scored's --threads (and OPENBLAS_NUM_THREADS)")
    p.add_argument("--scored", help="the scored binary (default ./scored)")
    p.set_defaults(fn=cmd_sample)
    return ap


def main(argv=None):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    torch.set_num_threads(1)
    a = build_parser().parse_args(argv)
    try:
        res = a.fn(a)
    except (EvalError, datasets.DatasetMissing, FileNotFoundError, ValueError) as e:
        print(f"evaluate: {e}", file=sys.stderr)
        return 1
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
