"""Shows or edits the "scored" metadata of a model file; the tensors are kept bit for bit.

    /usr/bin/python3 tools/model_meta.py show models/fmnist-vp.safetensors [--key card.anomaly]
    /usr/bin/python3 tools/model_meta.py set models/fmnist-vp.safetensors \
        [--classifier fmnist-classifier.safetensors | --no-classifier] \
        [--card '{"quality": {...}}'] [--card-file part.json] [--default-sampler '{...}'] \
        [--name fmnist-vp]

`--card` / `--card-file` merge a JSON object into the card: each top-level key replaces the
card's key of that name.  `--classifier` names the guidance classifier, a file in the same
folder as the model (the engine loads it from there).  `--name` renames the model (e.g. a
run trained under another name that is shipped in its place).  The file is rewritten atomically and
read back: the same tensors (names, dtypes, shapes, bytes) or nothing is written.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import safetensors_io as st  # noqa: E402


def read(path):
    header, _, _ = st.read_header(path)
    dtypes = {v.get("dtype") for v in header.values() if isinstance(v, dict)}
    if dtypes - {"F32", "F64", "F16", "I64", "I32"}:
        raise ValueError(f"{path}: tensor dtypes {sorted(dtypes)}: only F16/F32/F64/I32/I64 "
                         f"files can be rewritten here")
    tensors, raw = st.load(path)
    if "scored" not in raw:
        raise ValueError(f"{path}: no 'scored' metadata (not a scored model file)")
    return tensors, raw, json.loads(raw["scored"])


def write(path, tensors, raw, meta):
    raw = dict(raw)
    raw["scored"] = json.dumps(meta, sort_keys=False)
    tmp = path + ".tmp"
    st.save(tmp, tensors, raw)
    back, _, back_meta = read(tmp)
    same = set(back) == set(tensors) and all(
        back[k].dtype == tensors[k].dtype and back[k].shape == tensors[k].shape and
        np.array_equal(back[k].view(np.uint8), tensors[k].view(np.uint8)) for k in tensors)
    if not same or back_meta != meta:
        os.remove(tmp)
        raise RuntimeError(f"{path}: the rewritten file did not read back identically; unchanged")
    os.replace(tmp, path)


def get_key(obj, dotted):
    for part in dotted.split(".") if dotted else []:
        if not isinstance(obj, dict) or part not in obj:
            raise KeyError(f"no key {dotted!r}")
        obj = obj[part]
    return obj


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sh = sub.add_parser("show")
    sh.add_argument("model")
    sh.add_argument("--key", default="", help="dotted path inside the metadata, e.g. card.anomaly")
    se = sub.add_parser("set")
    se.add_argument("model")
    g = se.add_mutually_exclusive_group()
    g.add_argument("--classifier", help="guidance classifier file name (same folder)")
    g.add_argument("--no-classifier", action="store_true")
    se.add_argument("--card", help="JSON object merged into the card")
    se.add_argument("--card-file", help="file holding a JSON object merged into the card")
    se.add_argument("--default-sampler", help="JSON object: the card's default_sampler")
    se.add_argument("--name", help="the model's name (letters, digits, '-', '_', '.')")
    a = ap.parse_args(argv)
    try:
        tensors, raw, meta = read(a.model)
        if a.cmd == "show":
            print(json.dumps(get_key(meta, a.key), indent=1))
            return 0
        card = meta.setdefault("card", {})
        for text in ([a.card] if a.card else []) + \
                ([open(a.card_file).read()] if a.card_file else []):
            part = json.loads(text)
            if not isinstance(part, dict):
                raise ValueError("--card and --card-file need a JSON object")
            card.update(part)
        if a.name is not None:
            if not a.name or not all(c.isalnum() or c in "-_." for c in a.name):
                raise ValueError(f"--name {a.name!r}: use letters, digits, '-', '_' or '.'")
            meta["name"] = a.name
        if a.default_sampler:
            card["default_sampler"] = json.loads(a.default_sampler)
        if a.classifier:
            clf = os.path.join(os.path.dirname(os.path.abspath(a.model)), a.classifier)
            if os.path.basename(a.classifier) != a.classifier:
                raise ValueError("--classifier takes a file name in the model's folder")
            _, _, cmeta = read(clf)
            if cmeta.get("kind") != "classifier":
                raise ValueError(f"{clf} is not a classifier file (kind {cmeta.get('kind')!r})")
            if cmeta.get("shape") != meta.get("shape"):
                raise ValueError(f"{clf} takes shape {cmeta.get('shape')}, the model {meta.get('shape')}")
            meta["classifier"] = a.classifier
        elif a.no_classifier:
            meta.pop("classifier", None)
        write(a.model, tensors, raw, meta)
    except (OSError, ValueError, KeyError, RuntimeError, st.SafetensorsError) as e:
        print(f"model_meta: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
