#!/usr/bin/python3
"""Write the golden reference files for the C implementation of the score networks.

    /usr/bin/python3 tools/make_golden.py [--out-dir tests/data/golden]

Small random-weight networks (tools/nets.py), each saved as a model file in our format
(<name>.safetensors: weights + __metadata__["scored"]) and an input/output file
(<name>.io.safetensors) holding, all float32:

    x          [2, C, H, W]  network input (model data units)
    t          [2]           SDE time the inputs correspond to
    time_cond  [2]           the raw second argument of forward() (sigma for Fourier
                             models, t*999 / integer index for positional ones)
    out        [2, C, H, W]  raw network output  model(x, time_cond)
    v          [2, C, H, W]  probe
    vjp        [2, C, H, W]  v^T d(out)/dx  (torch.autograd)
    score      [2, C, H, W]  score_fn(model, config, sde, x, t)  (spec section 2)
    trace      [M, 3]        per module call, in call order: (module index i of
                             all_modules.<i>, mean, root-mean-square of its output)
  ddpmpp_vp_positional only:
    act.temb             [2, 4nf]      time embedding after Dense_1 (input of every block)
    act.all_modules.2    [2, nf, H, W] output of the first conv3x3
    act.all_modules.3    [2, nf, H, W] output of the first residual block
  classifier (x, t, sigma, y instead of time_cond):
    sigma [2] (marginal std at t), y [2] (class index as float), logits [2, K],
    logp [2] = log softmax(logits)[b, y_b], grad = d(sum_b logp_b)/dx [2, C, H, W],
    v [2, K], vjp = v^T d(logits)/dx.

A manifest.json lists the cases.  Weights are drawn deterministically with a non-trivial
scale (weights normal with std 1/sqrt(fan_in), biases std 0.1, GroupNorm scale 1 + 0.1 N(0,1)
and shift 0.1 N(0,1)), not the
official near-zero init_scale, so every block changes its input and outputs are O(1).
"""

import argparse
import hashlib
import json
import math
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nets  # noqa: E402
import safetensors_io as st  # noqa: E402

FMNIST_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"]

_NCSNPP = dict(name="ncsnpp", nf=8, ch_mult=[1, 2, 2], num_res_blocks=1, attn_resolutions=[8],
               resamp_with_conv=True, fir=True, fir_kernel=[1, 3, 3, 1], skip_rescale=True,
               resblock_type="biggan", progressive="none", progressive_input="residual",
               progressive_combine="sum", embedding_type="fourier", fourier_scale=16.0,
               init_scale=0.0, conditional=True, dropout=0.1, scale_by_sigma=True,
               num_scales=1000, sigma_min=0.01, sigma_max=50.0)

# name -> (config, description, times t for the two samples, seed)
CASES = {
    "ncsnpp_ve_fourier_fir_res": (
        {"model": dict(_NCSNPP), "data": {"image_size": 16, "num_channels": 3, "centered": False},
         "training": {"sde": "vesde", "continuous": True}},
        "NCSN++ (CIFAR-10 style): VE continuous, Fourier embedding of ln sigma, FIR resampling, "
        "biggan blocks, progressive_input residual, scale_by_sigma, uncentered input",
        [0.3, 0.82], 1),
    "ncsnpp_ve_skip_28x1": (
        {"model": dict(_NCSNPP, attn_resolutions=[14], progressive="output_skip",
                       progressive_input="input_skip", progressive_combine="sum"),
         "data": {"image_size": 28, "num_channels": 1, "centered": False},
         "training": {"sde": "vesde", "continuous": True}},
        "NCSN++ high-res style on a 1x28x28 (Fashion-MNIST shaped) input: progressive "
        "output_skip + input_skip (combine sum), FIR, Fourier, 28 -> 14 -> 7",
        [0.05, 0.95], 2),
    "ddpmpp_vp_positional": (
        {"model": dict(_NCSNPP, fir=False, progressive_input="none",
                       embedding_type="positional", scale_by_sigma=False),
         "data": {"image_size": 16, "num_channels": 3, "centered": True},
         "training": {"sde": "vpsde", "continuous": True}},
        "DDPM++: VP continuous (label t*999), positional embedding, biggan blocks with naive "
        "resampling, skip_rescale, centered input, attention at 8",
        [0.0372, 0.8134], 3),
    "ddpm_ve_discrete": (
        {"model": dict(name="ddpm", nf=32, ch_mult=[1, 1], num_res_blocks=1, attn_resolutions=[4],
                       resamp_with_conv=True, conditional=True, dropout=0.1, scale_by_sigma=True,
                       num_scales=1000, sigma_min=0.01, sigma_max=50.0),
         "data": {"image_size": 8, "num_channels": 3, "centered": False},
         "training": {"sde": "vesde", "continuous": False}},
        "score-SDE DDPM model (name ddpm, GroupNorm 32 groups): VE discrete, integer labels "
        "round((1-t)(N-1)), scale_by_sigma divides by sigmas[label], uncentered",
        [1.0 - 3.0 / 999.0, 1.0 - 517.0 / 999.0], 4),
    "ncsnpp_ddpmblock_residual_cat": (
        {"model": dict(_NCSNPP, resblock_type="ddpm", fir=False, resamp_with_conv=True,
                       progressive="residual", progressive_input="input_skip",
                       progressive_combine="cat", embedding_type="positional",
                       conditional=False, ch_mult=[1, 2], attn_resolutions=[4],
                       skip_rescale=False),
         "data": {"image_size": 8, "num_channels": 3, "centered": False},
         "training": {"sde": "vesde", "continuous": False}},
        "Extension coverage (no official checkpoint uses it; the official PyTorch Upsample "
        "crashes on this path): resblock_type ddpm (NIN shortcut), naive Downsample/Upsample "
        "with conv, progressive residual, input_skip with cat, not conditional, no skip_rescale",
        [1.0 - 12.0 / 999.0, 1.0 - 700.0 / 999.0], 6),
    "classifier_28x1": (
        {"model": dict(name="classifier", nf=8, ch_mult=[1, 2], num_res_blocks=1, num_classes=10,
                       fourier_scale=16.0, dropout=0.0),
         "data": {"image_size": 28, "num_channels": 1, "centered": True},
         "training": {"sde": "vpsde", "continuous": True}},
        "noise-conditional classifier (tools/nets.py NoiseClassifier) on 1x28x28, 10 classes, "
        "VP SDE: sigma = marginal std at t",
        [0.05, 0.6], 5),
}
ACTIVATION_DUMP = "ddpmpp_vp_positional"


def randomize_(model, seed):
    """Deterministic non-degenerate weights; the Fourier W is redrawn N(0, scale^2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            own = list(mod.named_parameters(recurse=False))
            if not own:
                continue
            for pname, p in own:
                if isinstance(mod, nets.GaussianFourierProjection):
                    scale = nets.resolve_config(model.config)["model"]["fourier_scale"]
                    p.copy_(torch.randn(p.shape, generator=g) * scale)
                elif isinstance(mod, nn.GroupNorm):
                    base = 1.0 if pname == "weight" else 0.0
                    p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
                elif p.ndim >= 2:
                    fan_in = p.shape[0] if isinstance(mod, nets.NIN) else p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))


def _hooks(model, record):
    hs = []
    for i, m in enumerate(model.all_modules):
        def hook(_m, _inp, out, i=i):
            record.append((i, out.detach()))
        hs.append(m.register_forward_hook(hook))
    return hs


def _trace(record):
    rows = [[float(i), o.double().mean().item(), o.double().pow(2).mean().sqrt().item()]
            for i, o in record]
    return torch.tensor(rows, dtype=torch.float32)


def make_case(name, out_dir):
    cfg, desc, times, seed = CASES[name]
    cfg = nets.resolve_config(cfg)
    model = nets.build_model(cfg)
    randomize_(model, seed)
    model.eval()
    sde = nets.sde_from_config(cfg)
    continuous = cfg["training"]["continuous"]
    d = cfg["data"]
    C, S = d["num_channels"], d["image_size"]
    g = torch.Generator().manual_seed(1000 + seed)
    t = torch.tensor(times, dtype=torch.float32)
    std = nets.marginal_std(sde, t).float()
    x0 = torch.rand(2, C, S, S, generator=g)
    if d["centered"]:
        x0 = 2 * x0 - 1
    mean_coef = torch.ones(2)
    if sde["type"] != "ve":
        b0, b1 = sde["beta_min"], sde["beta_max"]
        mean_coef = torch.exp(-0.25 * t ** 2 * (b1 - b0) - 0.5 * t * b0)
    x = mean_coef.reshape(-1, 1, 1, 1) * x0 + std.reshape(-1, 1, 1, 1) * torch.randn(
        2, C, S, S, generator=g)
    x = x.float()
    is_clf = cfg["model"]["name"] == "classifier"
    io = {"x": x, "t": t}
    record = []
    hooks = _hooks(model, record)
    xg = x.clone().requires_grad_(True)
    if is_clf:
        K = cfg["model"]["num_classes"]
        y = torch.tensor([3, 8])
        logits = model(xg, std)
        for h in hooks:
            h.remove()
        v = torch.randn(2, K, generator=g)
        (vjp,) = torch.autograd.grad((logits * v).sum(), xg)
        logp, grad = nets.classifier_log_prob_grad(model, x, std, y)
        io.update({"sigma": std, "y": y.float(), "logits": logits.detach(), "logp": logp,
                   "grad": grad, "v": v, "vjp": vjp})
        kind_note = "classifier"
    else:
        time_cond = nets.network_label(sde, t, continuous)
        out = model(xg, time_cond)
        for h in hooks:
            h.remove()
        v = torch.randn(out.shape, generator=g)
        (vjp,) = torch.autograd.grad((out * v).sum(), xg)
        with torch.no_grad():
            score = nets.score_fn(model, cfg, sde, x, t)
        io.update({"time_cond": time_cond.float(), "out": out.detach().float(), "v": v,
                   "vjp": vjp, "score": score.float()})
        kind_note = "network"
    io["trace"] = _trace(record)
    if name == ACTIVATION_DUMP:
        first = dict(record)
        emb = nets.positional_embedding(io["time_cond"], model.nf)
        with torch.no_grad():
            io["act.temb"] = model.all_modules[1](model.act(model.all_modules[0](emb)))
        io["act.all_modules.2"] = first[2]
        io["act.all_modules.3"] = first[3]
    io = {k: v.detach().float().contiguous() for k, v in io.items()}

    labels = FMNIST_LABELS if is_clf else []
    card = {"description": "golden test network with random weights (not a trained model): " + desc,
            "data": "none (random weights)",
            "how_made": "tools/make_golden.py (deterministic, seed %d)" % seed}
    meta = nets.model_metadata(cfg, "golden-" + name, sde, continuous, labels=labels, card=card)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model_path = os.path.join(out_dir, name + ".safetensors")
    io_path = os.path.join(out_dir, name + ".io.safetensors")
    st.save(model_path, state, {"scored": json.dumps(meta)})
    io_meta = {"model": name + ".safetensors", "kind": kind_note, "description": desc,
               "sde": sde, "continuous": continuous,
               "tensors": sorted(io.keys())}
    st.save(io_path, io, {"scored_golden": json.dumps(io_meta)})
    return {"name": name, "model": os.path.basename(model_path), "io": os.path.basename(io_path),
            "kind": kind_note, "architecture": cfg["model"]["name"], "description": desc,
            "parameters": int(sum(v.numel() for k, v in state.items() if k != "sigmas")),
            "tensors": len(state)}


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="write tests/data/golden/*")
    ap.add_argument("--out-dir", default=os.path.join(here, "..", "tests", "data", "golden"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # reproducible reductions
    os.makedirs(a.out_dir, exist_ok=True)
    cases = []
    for name in CASES:
        c = make_case(name, a.out_dir)
        for key in ("model", "io"):
            c[key + "_sha256"] = _sha(os.path.join(a.out_dir, c[key]))
        cases.append(c)
        # re-read and re-run as a check
        model, _ = nets.load_model_file(os.path.join(a.out_dir, c["model"]))
        ref, _ = st.load_torch(os.path.join(a.out_dir, c["io"]))
        with torch.no_grad():
            if c["kind"] == "classifier":
                got, want = model(ref["x"], ref["sigma"]), ref["logits"]
            else:
                got, want = model(ref["x"], ref["time_cond"]), ref["out"]
        err = (got.float() - want).abs().max().item()
        if err > 1e-5 * max(1.0, want.abs().max().item()):
            raise SystemExit(f"{c['name']}: re-run differs by {err}")
        sizes = [os.path.getsize(os.path.join(a.out_dir, c[k])) for k in ("model", "io")]
        print(f"{c['name']:32s} {c['parameters']:7d} params  model {sizes[0]:7d} B  io {sizes[1]:6d} B")
    with open(os.path.join(a.out_dir, "manifest.json"), "w") as f:
        json.dump({"format": 1, "generator": "tools/make_golden.py", "cases": cases}, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
