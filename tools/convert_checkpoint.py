#!/usr/bin/python3
"""Convert an official score_sde_pytorch checkpoint to a `scored` model file.

    /usr/bin/python3 tools/convert_checkpoint.py CKPT.pth --config CONFIG --out MODEL.safetensors
        [--no-ema] [--name NAME] [--labels a,b,...] [--dtype f32|f16|bf16]

CKPT.pth  a torch.save dict {'model': state dict with 'module.' prefixes (raw weights),
          'ema': {'decay', 'num_updates', 'shadow_params': [EMA copy of every
          requires-grad parameter, in model.parameters() order]}, 'optimizer', 'step'}.
CONFIG    either a score_sde_pytorch `configs/**/*.py` file (executed with a small stand-in
          for ml_collections; the directory that contains `configs/` goes on sys.path so
          `from configs.default_cifar10_configs import get_default_configs` works), or a JSON
          file with the same nested fields ({"model": {...}, "data": {...}, "training": {...},
          "sampling": {...}}).

The weights are the EMA ones (as the official evaluation uses them): shadow_params[j] is
zipped with the j-th requires-grad parameter; the frozen Fourier `W` and the `sigmas`
buffer come from 'model'.  With --no-ema every tensor comes from 'model'.  Any missing,
extra or mis-shaped tensor is refused with a message naming the key and both shapes.

Output: one .safetensors file, tensors named exactly as the official state dict without
`module.` (all_modules.<i>.<param>, sigmas), float32 (sigmas float64), and
__metadata__["scored"] = JSON (see tools/README.md, "Score networks").
"""

import argparse
import copy
import importlib.util
import itertools
import json
import os
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nets  # noqa: E402
import safetensors_io as st  # noqa: E402


class ConvertError(Exception):
    pass


# --------------------------------------------------------------------------------------
# a stand-in for ml_collections (ConfigDict only)
# --------------------------------------------------------------------------------------

class ConfigDict:
    """Nested dict with attribute access: what score_sde_pytorch configs need."""

    def __init__(self, initial_dictionary=None, **kwargs):
        object.__setattr__(self, "_fields", {})
        for k, v in dict(initial_dictionary or {}, **kwargs).items():
            self[k] = v

    @staticmethod
    def _wrap(v):
        if isinstance(v, dict) and not isinstance(v, ConfigDict):
            return ConfigDict(v)
        return v

    def __getattr__(self, key):
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self._fields[key]
        except KeyError:
            raise AttributeError(f"config has no field {key!r}") from None

    def __setattr__(self, key, value):
        self._fields[key] = self._wrap(value)

    def __delattr__(self, key):
        del self._fields[key]

    def __getitem__(self, key):
        return self._fields[key]

    def __setitem__(self, key, value):
        self._fields[key] = self._wrap(value)

    def __contains__(self, key):
        return key in self._fields

    def __iter__(self):
        return iter(self._fields)

    def __len__(self):
        return len(self._fields)

    def keys(self):
        return self._fields.keys()

    def values(self):
        return self._fields.values()

    def items(self):
        return self._fields.items()

    def get(self, key, default=None):
        return self._fields.get(key, default)

    def update(self, other=None, **kw):
        for k, v in dict(other or {}, **kw).items():
            self[k] = v

    def to_dict(self):
        return {k: (v.to_dict() if isinstance(v, ConfigDict) else v) for k, v in self._fields.items()}

    def lock(self):
        return self

    def unlock(self):
        return self

    def copy_and_resolve_references(self):
        return copy.deepcopy(self)

    def __deepcopy__(self, memo):
        return ConfigDict({k: copy.deepcopy(v, memo) for k, v in self._fields.items()})

    def __repr__(self):
        return f"ConfigDict({self._fields!r})"


def _ml_collections_stub():
    mc = types.ModuleType("ml_collections")
    cd = types.ModuleType("ml_collections.config_dict")
    cd.ConfigDict = ConfigDict
    cd.FrozenConfigDict = ConfigDict
    mc.ConfigDict = ConfigDict
    mc.FrozenConfigDict = ConfigDict
    mc.config_dict = cd
    return {"ml_collections": mc, "ml_collections.config_dict": cd}


def _plain(v):
    if isinstance(v, ConfigDict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)  # torch.device and the like


_counter = itertools.count()


def _repo_root_for(path):
    """The nearest ancestor directory that contains a `configs` directory holding `path`."""
    p = os.path.dirname(os.path.abspath(path))
    while True:
        if os.path.basename(p) == "configs":
            return os.path.dirname(p)
        if os.path.isdir(os.path.join(p, "configs")) and os.path.abspath(path).startswith(
                os.path.join(p, "configs") + os.sep):
            return p
        parent = os.path.dirname(p)
        if parent == p:
            return os.path.dirname(os.path.abspath(path))
        p = parent


def load_config(path):
    """Plain nested dict from a score_sde_pytorch config .py or a JSON file."""
    if not os.path.isfile(path):
        raise ConvertError(f"config {path} not found")
    if path.endswith(".json"):
        with open(path) as f:
            try:
                cfg = json.load(f)
            except ValueError as e:
                raise ConvertError(f"config {path}: invalid JSON: {e}") from None
        if not isinstance(cfg, dict) or "model" not in cfg:
            raise ConvertError(f"config {path}: needs a top-level object with a 'model' section")
        return cfg
    root = _repo_root_for(path)
    saved_mods = {k: v for k, v in sys.modules.items()
                  if k in ("ml_collections", "ml_collections.config_dict")
                  or k == "configs" or k.startswith("configs.")}
    for k in saved_mods:
        del sys.modules[k]
    sys.modules.update(_ml_collections_stub())
    sys.path.insert(0, root)
    try:
        name = f"_scored_config_{next(_counter)}"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception as e:
            raise ConvertError(f"config {path}: {type(e).__name__}: {e}") from None
        if not hasattr(mod, "get_config"):
            raise ConvertError(f"config {path} has no get_config()")
        cfg = mod.get_config()
    finally:
        sys.path.remove(root)
        for k in [k for k in sys.modules if k in ("ml_collections", "ml_collections.config_dict")
                  or k == "configs" or k.startswith("configs.")]:
            del sys.modules[k]
        sys.modules.update(saved_mods)
    return _plain(cfg)


# --------------------------------------------------------------------------------------
# state conversion
# --------------------------------------------------------------------------------------

def _shape(t):
    return list(t.shape)


def convert_state(ckpt, model, use_ema=True):
    """Ordered {name: tensor} in the model's state-dict order; raises ConvertError."""
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ConvertError("checkpoint has no 'model' entry (not a score_sde_pytorch checkpoint)")
    raw = {}
    for k, v in ckpt["model"].items():
        raw[k[len("module."):] if k.startswith("module.") else k] = v
    want = model.state_dict()
    for k, v in want.items():
        if k not in raw:
            raise ConvertError(f"checkpoint 'model' lacks tensor {k} (the config expects shape {_shape(v)})")
        if not torch.is_tensor(raw[k]) or tuple(raw[k].shape) != tuple(v.shape):
            got = _shape(raw[k]) if torch.is_tensor(raw[k]) else type(raw[k]).__name__
            raise ConvertError(f"tensor {k}: checkpoint shape {got}, config expects {_shape(v)}")
    for k, v in raw.items():
        if k not in want:
            shp = _shape(v) if torch.is_tensor(v) else type(v).__name__
            raise ConvertError(f"checkpoint 'model' has tensor {k} (shape {shp}) that the config's "
                               f"model does not have")
    out = {k: raw[k] for k in want}
    if use_ema:
        ema = ckpt.get("ema")
        if not isinstance(ema, dict) or "shadow_params" not in ema:
            raise ConvertError("checkpoint has no 'ema' shadow_params (use --no-ema for raw weights)")
        shadow = list(ema["shadow_params"])
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        if len(shadow) != len(names):
            raise ConvertError(f"'ema'.shadow_params has {len(shadow)} tensors, the config's model has "
                               f"{len(names)} trainable parameters")
        for j, (n, s) in enumerate(zip(names, shadow)):
            if not torch.is_tensor(s) or tuple(s.shape) != tuple(want[n].shape):
                got = _shape(s) if torch.is_tensor(s) else type(s).__name__
                raise ConvertError(f"tensor {n}: 'ema'.shadow_params[{j}] has shape {got}, "
                                   f"config expects {_shape(want[n])}")
            out[n] = s
    res = {}
    for k, v in out.items():
        v = v.detach().cpu()
        res[k] = v.to(torch.float64) if k == "sigmas" else v.to(torch.float32)
    return res


# --------------------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------------------

_PREDICTORS = {"reverse_diffusion": "reverse_diffusion", "euler_maruyama": "euler_maruyama",
               "ancestral_sampling": "ancestral", "none": "none"}
_CORRECTORS = {"langevin": "langevin", "ald": "ald", "none": "none"}


def default_sampler(cfg, sde):
    s = cfg.get("sampling") or {}
    pred = _PREDICTORS.get(str(s.get("predictor", "")).lower())
    corr = _CORRECTORS.get(str(s.get("corrector", "")).lower())
    if str(s.get("method", "pc")).lower() != "pc" or pred is None or corr is None:
        return None
    ds = {"kind": "pc", "predictor": pred, "corrector": corr, "steps": int(sde["N"]),
          "eps": 1e-5 if sde["type"] == "ve" else 1e-3}
    if "snr" in s:
        ds["snr"] = float(s["snr"])
    if "n_steps_each" in s:
        ds["corrector_steps"] = int(s["n_steps_each"])
    if "noise_removal" in s:
        ds["denoise"] = bool(s["noise_removal"])
    return ds


def build_metadata(cfg, name, labels=(), card_extra=None):
    sde = nets.sde_from_config(cfg)
    continuous = bool(nets.cfg_get(cfg, "training.continuous", True))
    card = {}
    ds = default_sampler(cfg, sde)
    if ds:
        card["default_sampler"] = ds
    card.update(card_extra or {})
    return nets.model_metadata(cfg, name, sde, continuous, labels=labels, card=card)


def default_name(config_path):
    """configs/ve/cifar10_ncsnpp_continuous.py -> 've_cifar10_ncsnpp_continuous'."""
    p = os.path.splitext(os.path.abspath(config_path))[0]
    parts = p.split(os.sep)
    if "configs" in parts[:-1]:
        i = len(parts) - 1 - parts[::-1].index("configs")
        return "_".join(parts[i + 1:])
    return os.path.basename(p)


def convert(ckpt_path, config_path, out_path, use_ema=True, name=None, labels=(), dtype="f32",
            quiet=False):
    cfg = load_config(config_path)
    try:
        model = nets.build_model(cfg, init=False)
    except (KeyError, ValueError, NotImplementedError) as e:
        raise ConvertError(f"config {config_path}: {e}") from None
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - report any unpickling problem plainly
        raise ConvertError(f"cannot read checkpoint {ckpt_path}: {type(e).__name__}: {e}") from None
    state = convert_state(ckpt, model, use_ema)
    if name is None:
        name = default_name(config_path)
    ema = ckpt.get("ema") if isinstance(ckpt.get("ema"), dict) else {}
    data_name = nets.cfg_get(cfg, "data.dataset", None)
    card = {
        "description": f"score_sde_pytorch {nets.cfg_get(cfg, 'model.name')} network "
                       f"({os.path.basename(config_path)}), converted from {os.path.basename(ckpt_path)}",
        "data": str(data_name) if data_name else "unknown",
        "how_made": "tools/convert_checkpoint.py" + ("" if use_ema else " --no-ema"),
        "score": "neural network (" + ("EMA weights" if use_ema else "raw, non-EMA weights") + ")",
        "source": {"checkpoint": os.path.basename(ckpt_path), "config": os.path.basename(config_path),
                   "step": int(ckpt["step"]) if isinstance(ckpt.get("step"), int) else None,
                   "ema": bool(use_ema), "ema_decay": ema.get("decay"),
                   "ema_num_updates": ema.get("num_updates")},
    }
    meta = build_metadata(cfg, name, labels=labels, card_extra=card)
    st_dtype = {"f32": None, "f16": "F16", "bf16": "BF16"}[dtype.lower()]
    dtypes = None
    if st_dtype:
        keep = {"sigmas", "all_modules.0.W"} if meta["architecture"].get("embedding_type") == "fourier" \
            else {"sigmas"}
        dtypes = {k: st_dtype for k in state if k not in keep}
    st.save(out_path, state, {"scored": json.dumps(meta, sort_keys=False)}, dtype=dtypes)
    nets.load_model_file(out_path)  # re-read and check every tensor against the config
    if not quiet:
        n = sum(v.numel() for k, v in state.items() if k != "sigmas")
        print(f"{out_path}: {name}, {len(state)} tensors, {n} parameters, "
              f"{os.path.getsize(out_path)} bytes, {'EMA' if use_ema else 'raw'} weights")
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--config", required=True, help="score_sde_pytorch configs/**/*.py or JSON")
    ap.add_argument("--out", required=True, help="output .safetensors")
    ap.add_argument("--no-ema", action="store_true", help="use the raw 'model' weights")
    ap.add_argument("--name", help="model name (default: config file name)")
    ap.add_argument("--labels", default="", help="comma-separated class names (default none)")
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"],
                    help="weight storage type (sigmas stay F64, a Fourier W stays F32)")
    a = ap.parse_args(argv)
    labels = [s for s in a.labels.split(",") if s] if a.labels else []
    try:
        convert(a.checkpoint, a.config, a.out, use_ema=not a.no_ema, name=a.name, labels=labels,
                dtype=a.dtype)
    except ConvertError as e:
        print(f"convert_checkpoint: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
