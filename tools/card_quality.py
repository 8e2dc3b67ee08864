"""Builds a model card's "quality" section from the measurement rows in tools/results/.

    /usr/bin/python3 tools/card_quality.py --samples-prefix runs/eval/vp- \
        --fid tools/results/fid.jsonl \
        --bpd tools/results/fmnist-vp-bpd.jsonl:fmnist-test \
        --bpd tools/results/fmnist-vp-bpd-1e-3.jsonl:fmnist-test \
        --agreement tools/results/agreement-w3.jsonl:3 \
        --guidance tools/results/guidance.jsonl --out runs/eval/quality.json
    /usr/bin/python3 tools/model_meta.py set models/fmnist-vp.safetensors --card-file runs/eval/quality.json

  --fid F           FID rows (tools/evaluate.py fid) whose "samples" path starts with a
                    --samples-prefix (repeatable); each row's sampler and mean NFE are the
                    row's own (evaluate.py fid copies them from the samples' sidecar), else the
                    sidecar's if it still exists (runs/ is not kept), else "unknown"
  --bpd F:SET       bits/dim rows of SET (tools/eval_likelihood.py); the file name's "-1e-3"
                    marks rtol = atol = 1e-3 runs, others are 1e-5; mean, standard error, n, NFE
  --agreement F:W   per-class agreement rows (tools/evaluate.py agreement) at guidance weight W
  --guidance F      the guidance classifier's accuracy rows (tools/evaluate.py guidance-accuracy)

Prints the {"quality": {...}} object (and writes it to --out).
"""

import argparse
import json
import math
import os
import sys

import evaluate


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def sampler_of(row):
    """(sampler arguments, eps used, mean NFE): the row's own (evaluate.py fid copies them from
    the samples' sidecar), else the sidecar's if it is still there, else ("unknown", None,
    None)."""
    info = row if "sampler" in row else evaluate.sampler_of_samples(row["samples"])
    return info.get("sampler", "unknown"), info.get("eps"), info.get("nfe")


def fid_section(path, prefixes):
    out = []
    for r in rows(path):
        if not r.get("samples", "").startswith(tuple(prefixes)):
            continue
        sampler, eps, nfe = sampler_of(r)
        entry = {"sampler": sampler, "nfe": nfe, "n": r["n"], "fid": r["fid"],
                 "floor": r["floor"], "ratio": r["ratio"], "features": r["features"]}
        if eps is not None:
            entry["eps"] = eps
        out.append(entry)
    return out


def bpd_section(spec):
    path, set_name = spec.rsplit(":", 1)
    latest = {r["index"]: r for r in rows(path) if r["set"] == set_name}  # one row per image
    b = [r["bits_per_dim"] for r in latest.values()]
    nfe = [r["nfe"] for r in latest.values()]
    if not b:
        raise ValueError(f"{path}: no rows of set {set_name}")
    n = len(b)
    mean = sum(b) / n
    se = math.sqrt(sum((x - mean) ** 2 for x in b) / (n - 1) / n) if n > 1 else None
    tol = 1e-3 if "-1e-3" in os.path.basename(path) else 1e-5
    return {"set": set_name, "n": n, "bits_per_dim": round(mean, 4),
            "se": round(se, 4) if se else None, "rtol_atol": tol,
            "nfe_mean": round(sum(nfe) / n, 1), "rows": os.path.relpath(path)}


def agreement_section(spec):
    path, weight = spec.rsplit(":", 1)
    rs = rows(path)
    per = {r["label"]: r["agreement"] for r in rs}
    n = sum(r["n"] for r in rs)
    mean = sum(r["agreement"] * r["n"] for r in rs) / n
    return {"guidance": float(weight), "n": n, "agreement": round(mean, 4), "per_class": per,
            "classifier": rs[0].get("classifier"), "rows": os.path.relpath(path)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fid")
    ap.add_argument("--samples-prefix", action="append", default=[],
                    help="repeatable; default: every row")
    ap.add_argument("--bpd", action="append", default=[])
    ap.add_argument("--agreement", action="append", default=[])
    ap.add_argument("--guidance")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    q = {}
    try:
        if a.fid:
            q["fid"] = fid_section(a.fid, a.samples_prefix or [""])
        if a.bpd:
            q["test_bits_per_dim"] = [bpd_section(s) for s in a.bpd]
        if a.agreement:
            q["guided_label_agreement"] = [agreement_section(s) for s in a.agreement]
        if a.guidance:
            g = rows(a.guidance)[-1]
            q["guidance_classifier_accuracy"] = {
                "classifier": g["classifier"], "n": g["n"],
                "by_t": {str(r["t"]): r["accuracy"] for r in g["results"]}}
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        print(f"card_quality: {e}", file=sys.stderr)
        return 1
    text = json.dumps({"quality": q}, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
