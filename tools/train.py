"""Continuous-time denoising score matching training for scored's score networks.

Spec: /work/shared/spec/score-sde.md section 1.7 (loss) and section 2 (network output ->
score).  For every step: t ~ U(eps, 1) (eps = training.eps, 1e-5), z ~ N(0, I),
x_t = mean(x0, t) + std(t) z, per-sample loss ||s(x_t, t) std(t) + z||^2 reduced by the
mean over dims (VP, sub-VP: training.reduce_mean true) or 1/2 sum (VE), then the batch
mean.  s comes from nets.score_fn (VP/sub-VP continuous: label t*999, s = -out/std;
VE continuous: label sigma(t), s = out).  Works for VE, VP and sub-VP SDEs.

Optimisation: Adam (betas (beta1, 0.999)), learning rate linear warm-up over
optim.warmup steps (lr*(step+1)/warmup), then optim.schedule "constant" or "cosine"
(cosine from lr down to lr*lr_floor at optim.decay_steps, default training.n_iters,
then held at the floor);
gradient-norm clipping (optim.grad_clip, < 0 disables); EMA of the weights with decay
min(ema_rate, (1+n)/(10+n)), n = number of EMA updates so far (as score_sde_pytorch).

Data: data.dataset via tools/datasets.py (fashion-mnist or emoji-32), uint8 images;
with data.uniform_dequantization x = (u8 + U[0,1))/256 else u8/255, then 2x-1 when
data.centered.  Each epoch is a permutation drawn from numpy default_rng([seed, epoch])
(the last partial batch is dropped), so the batch at step k depends only on k and the
seed; t, z, dropout and the dequantization noise come from torch's global generator,
whose state is checkpointed.  `--resume` therefore continues bit-for-bit (same thread
count).

Config: a JSON file with the official nested field names (model.*, data.*, training.*,
optim.*), e.g. tools/configs/fmnist_vp.json.  Extra fields read here:
model.ema_rate, model.beta_min/beta_max (VP/sub-VP), data.dataset,
data.uniform_dequantization, data.random_flip, training.{batch_size, n_iters, eps, reduce_mean, seed},
optim.{lr, beta1, eps, weight_decay, warmup, schedule, lr_floor, decay_steps, grad_clip}.

Usage:
    nice -n 19 /usr/bin/python3 tools/train.py --config tools/configs/fmnist_vp.json \
        --name fmnist-vp --max-minutes 80 --export models/fmnist-vp.safetensors
    /usr/bin/python3 tools/train.py --name fmnist-vp --resume [--max-minutes M] [--steps S]
    /usr/bin/python3 tools/train.py --name fmnist-vp --export-only --export models/x.safetensors

Outputs under runs/<name>/: checkpoint.pt (model, EMA shadow, optimizer, step, rng
states, loss history, commands; written every --ckpt-every steps and at the end),
loss.csv (one row per progress line) and config.json.  The run stops at
training.n_iters (or --steps) or when --max-minutes of wall-clock time have passed in
this invocation (SIGINT/SIGTERM also stop it cleanly); it then checkpoints and, with
--export, writes the EMA weights as a scored .safetensors model file.
"""

import argparse
import json
import math
import os
import shlex
import signal
import sys
import time

# Under CPU contention (others' benchmarks) OpenMP threads that spin at barriers make a
# 2-thread step up to 10x slower; sleeping waits cost little when the machine is idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import datasets  # noqa: E402
import nets  # noqa: E402
import safetensors_io as st  # noqa: E402

_DEFAULT_SAMPLER = {"kind": "ode", "solver": "heun", "steps": 50, "denoise": True}


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, flush=True)


# --------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------

def load_config(path):
    with open(path) as f:
        cfg = json.load(f)
    nets.resolve_config(cfg)  # validates the model fields
    return cfg


def get(cfg, path, default):
    return nets.cfg_get(cfg, path, default)


def training_settings(cfg):
    sde = nets.sde_from_config(cfg)
    return {
        "sde": sde,
        "continuous": bool(get(cfg, "training.continuous", True)),
        "reduce_mean": bool(get(cfg, "training.reduce_mean", sde["type"] != "ve")),
        "eps": float(get(cfg, "training.eps", 1e-5)),
        "batch_size": int(get(cfg, "training.batch_size", 64)),
        "n_iters": int(get(cfg, "training.n_iters", 10000)),
        "decay_steps": int(get(cfg, "optim.decay_steps", get(cfg, "training.n_iters", 10000))),
        "seed": int(get(cfg, "training.seed", 42)),
        "lr": float(get(cfg, "optim.lr", 2e-4)),
        "beta1": float(get(cfg, "optim.beta1", 0.9)),
        "adam_eps": float(get(cfg, "optim.eps", 1e-8)),
        "weight_decay": float(get(cfg, "optim.weight_decay", 0.0)),
        "warmup": int(get(cfg, "optim.warmup", 0)),
        "schedule": str(get(cfg, "optim.schedule", "constant")).lower(),
        "lr_floor": float(get(cfg, "optim.lr_floor", 0.1)),
        "grad_clip": float(get(cfg, "optim.grad_clip", 1.0)),
        "ema_rate": float(get(cfg, "model.ema_rate", 0.999)),
        "dataset": str(get(cfg, "data.dataset", "fashion-mnist")),
        "centered": bool(get(cfg, "data.centered", False)),
        "dequant": bool(get(cfg, "data.uniform_dequantization", False)),
        "random_flip": bool(get(cfg, "data.random_flip", False)),
        "t_power": float(get(cfg, "training.t_power", 1.0)),
    }


def lr_at(step, s):
    """Learning rate for the update that turns `step` completed steps into step+1."""
    lr = s["lr"]
    if s["warmup"] > 0 and step < s["warmup"]:
        return lr * (step + 1) / s["warmup"]
    if s["schedule"] == "constant":
        return lr
    if s["schedule"] == "cosine":
        span = max(1, s["decay_steps"] - s["warmup"])
        p = min(1.0, (step - s["warmup"]) / span)
        floor = lr * s["lr_floor"]
        return floor + (lr - floor) * 0.5 * (1.0 + math.cos(math.pi * p))
    raise ValueError(f"optim.schedule {s['schedule']!r} is not constant or cosine")


def schedule_text(s):
    w = f"linear warm-up over {s['warmup']} steps, then " if s["warmup"] else ""
    if s["schedule"] == "cosine":
        return (f"{w}cosine decay from {s['lr']:g} to {s['lr'] * s['lr_floor']:g} at step "
                f"{s['decay_steps']}, then held")
    return f"{w}constant {s['lr']:g}"


# --------------------------------------------------------------------------------------
# SDE pieces
# --------------------------------------------------------------------------------------

def dsm_loss(model, cfg, s, x0):
    """Continuous-time DSM loss (spec 1.7) for a batch x0 (already scaled)."""
    B = x0.shape[0]
    xt, std, z, t = perturb(s["sde"], s, x0)
    score = nets.score_fn(model, cfg, s["sde"], xt, t, continuous=True)
    per = torch.square(score * std[:, None, None, None] + z).reshape(B, -1)
    per = per.mean(dim=1) if s["reduce_mean"] else 0.5 * per.sum(dim=1)
    return per.mean()


def perturb(sde, s, x0, t_power=1.0):
    """(x_t, std(t), z, t) for t = eps + (1 - eps) u^t_power, u ~ U(0, 1) (t_power 1:
    t ~ U(eps, 1); above 1 more of the batch at small t), z ~ N(0, I): the forward SDE's
    marginal.  Draws t, then z, from torch's global generator."""
    B = x0.shape[0]
    t = torch.rand(B) ** t_power * (1.0 - s["eps"]) + s["eps"]
    z = torch.randn_like(x0)
    std = nets.marginal_std(sde, t).to(x0.dtype)
    xt = nets.marginal_mean_coeff(sde, t).to(x0.dtype)[:, None, None, None] * x0 + std[:, None, None, None] * z
    return xt, std, z, t


def classifier_loss(model, s, x0, y):
    """Noise-conditional classifier (spec 6.3): cross-entropy of p(y | x_t, sigma(t)) with
    x_t drawn from the training SDE's marginal at t = eps + (1 - eps) u^t_power (training.t_power,
    default 1: t ~ U(eps, 1)) and sigma = its std."""
    xt, std, _, _ = perturb(s["sde"], s, x0, s["t_power"])
    return torch.nn.functional.cross_entropy(model(xt, std), y.long())


def classifier_accuracy(model, s, images, labels, ts=(None, 0.1, 0.25, 0.5), seed=0):
    """{t: accuracy} on images (uint8) at clean data (t None: the SDE's marginal at t = eps
    without its noise term) and at noise levels t (x_t drawn with a fixed generator); the same
    computation as `evaluate.py guidance-accuracy` (nets.classifier_predictions)."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.from_numpy(images.astype(np.uint8))
    x0 = (x0.unsqueeze(1) if x0.dim() == 3 else x0).to(torch.float32) / 255.0
    x0 = 2 * x0 - 1 if s["centered"] else x0
    y = torch.from_numpy(np.asarray(labels).astype(np.int64))
    out = {}
    for t in ts:
        pred = nets.classifier_predictions(model, s["sde"], x0, s["eps"] if t is None else t,
                                           None if t is None else g)
        out["clean" if t is None else f"t={t:g}"] = round(float((pred == y).double().mean()), 4)
    return out


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------

class Batches:
    """Batch k of the run: epoch k // nb, position k % nb of permutation(seed, epoch)."""

    def __init__(self, images, batch_size, seed, labels=None):
        self.y = None if labels is None else torch.from_numpy(np.asarray(labels).astype(np.int64))
        x = torch.from_numpy(images.astype(np.uint8))
        self.x = x.unsqueeze(1) if x.dim() == 3 else x  # [N,C,H,W] u8 (gray [N,H,W] gets C=1)
        self.B = batch_size
        self.seed = seed
        self.nb = len(images) // batch_size
        if self.nb < 1:
            raise ValueError(f"batch size {batch_size} > dataset size {len(images)}")
        self._epoch, self._perm = None, None

    def get(self, step):
        epoch, pos = divmod(step, self.nb)
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.x))
            self._epoch = epoch
        idx = torch.from_numpy(self._perm[pos * self.B:(pos + 1) * self.B])
        return self.x[idx], (None if self.y is None else self.y[idx])


def scale_batch(u8, s):
    x = u8.to(torch.float32)
    if s["random_flip"]:  # horizontal flip of a random half (torch's global generator)
        flip = torch.rand(x.shape[0]) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if s["dequant"]:
        x = (x + torch.rand_like(x)) / 256.0
    else:
        x = x / 255.0
    return x * 2.0 - 1.0 if s["centered"] else x


# --------------------------------------------------------------------------------------
# EMA
# --------------------------------------------------------------------------------------

class EMA:
    def __init__(self, params, rate):
        self.rate = rate
        self.num_updates = 0
        self.shadow = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self, params):
        self.num_updates += 1
        decay = min(self.rate, (1 + self.num_updates) / (10 + self.num_updates))
        for sp, p in zip(self.shadow, params):
            sp.sub_((1.0 - decay) * (sp - p.detach()))

    def state_dict(self):
        return {"rate": self.rate, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, d):
        self.rate = d["rate"]
        self.num_updates = d["num_updates"]
        for sp, v in zip(self.shadow, d["shadow"]):
            sp.copy_(v)


# --------------------------------------------------------------------------------------
# checkpoint / export
# --------------------------------------------------------------------------------------

def save_checkpoint(path, state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def ema_state_dict(model, ema):
    """The model's state dict with the EMA shadow in place of the trainable parameters."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    for n, sp in zip(names, ema.shadow):
        sd[n] = sp.detach().clone()
    return sd


def n_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def loss_summary(history):
    """[(step, running loss)] -> a few points for the card."""
    if not history:
        return []
    marks = sorted(set([history[0][0]] + [h[0] for h in history if h[0] in
                                          (100, 500, 1000, 2000, 3000, 4000, 5000, 6000, 8000,
                                           10000, 15000, 20000)] + [history[-1][0]]))
    d = dict((h[0], h[1]) for h in history)
    return [[m, round(float(d[m]), 5)] for m in marks]


def export_model(path, cfg, name, model, ema, ck):
    s = training_settings(cfg)
    is_clf = cfg["model"]["name"] == "classifier"
    sd = ema_state_dict(model, ema)
    out = {}
    for k, v in sd.items():
        out[k] = v.to(torch.float64) if k == "sigmas" else v.to(torch.float32)
    hist = ck.get("history", [])
    data_desc = {
        "fashion-mnist": "Fashion-MNIST training split (60,000 28x28 grayscale images, Debian "
                         "package dataset-fashion-mnist)",
        "emoji-32": "emoji-32 training split (about 3,550 Noto Color Emoji bitmaps from the Debian "
                    "package fonts-noto-color-emoji, composited on white, 32x32 RGB; "
                    "tools/datasets.py)",
    }.get(s["dataset"].lower(), s["dataset"])
    pre = []
    if s["dequant"]:
        pre.append("uniform dequantization (u8 + U[0,1))/256")
    else:
        pre.append("u8/255")
    if s["centered"]:
        pre.append("scaled to [-1, 1]")
    if s["random_flip"]:
        pre.append("random horizontal flips")
    what = (f"noise-conditional classifier p(y | x_t, sigma) for class guidance, trained by "
            f"cross-entropy on x_t from the {s['sde']['type'].upper()} SDE's marginal"
            if is_clf else
            f"score network trained by continuous-time denoising score matching "
            f"({s['sde']['type'].upper()} SDE)")
    card = {
        "description": f"{cfg['model']['name']} (nf {cfg['model']['nf']}, ch_mult "
                       f"{cfg['model']['ch_mult']}, {cfg['model']['num_res_blocks']} res blocks/level) "
                       f"{what} with tools/train.py on 2 CPU cores",
        "data": data_desc + "; " + ", ".join(pre),
        "score": "neural network (EMA weights)",
        "how_made": " ; ".join(ck.get("commands", [])),
        "training": {
            "objective": ("cross-entropy of p(y | x_t, sigma(t)), t = %g + (1 - %g) u^%g, u ~ U(0, 1)"
                          % (s["eps"], s["eps"], s["t_power"])) if is_clf
            else "continuous DSM, t ~ U(%g, 1), %s" % (
                s["eps"], "mean over dims" if s["reduce_mean"] else "1/2 sum over dims"),
            "steps": int(ck["step"]),
            "batch_size": s["batch_size"],
            "images_seen": int(ck["step"]) * s["batch_size"],
            "optimizer": f"Adam (beta1 {s['beta1']:g}, eps {s['adam_eps']:g}, weight decay "
                         f"{s['weight_decay']:g}), grad-norm clip {s['grad_clip']:g}",
            "lr_schedule": schedule_text(s),
            "lr_at_end": lr_at(max(0, int(ck["step"]) - 1), s),
            "ema": f"decay min({s['ema_rate']:g}, (1+n)/(10+n)), {ema.num_updates} updates",
            "wall_clock_minutes": round(float(ck.get("elapsed_s", 0.0)) / 60.0, 1),
            "loss_at_end": round(float(hist[-1][1]), 5) if hist else None,
            "loss_curve": loss_summary(hist),
            "parameters": n_params(model),
            "seed": s["seed"],
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }
    labels = []
    if is_clf:
        images, y = datasets.load(s["dataset"], "test")
        if y is None:
            raise ValueError(f"dataset {s['dataset']} has no labels for a classifier")
        labels = list(datasets.FMNIST_LABELS) if len(set(y.tolist())) == 10 else []
        model.load_state_dict(sd)  # measure the exported (EMA) weights
        acc = classifier_accuracy(model, s, images, y)
        card["test_accuracy"] = acc
        card["data"] = data_desc.replace("training split", "training split with labels") + \
            "; " + ", ".join(pre)
        log(f"test accuracy of the EMA weights: {acc}")
    else:
        card["default_sampler"] = dict(_DEFAULT_SAMPLER)
    meta = nets.model_metadata(cfg, name, s["sde"], s["continuous"], labels=labels, card=card)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    st.save(tmp, out, {"scored": json.dumps(meta, sort_keys=False)})
    nets.load_model_file(tmp)  # re-read and check every tensor against the config
    os.replace(tmp, path)
    log(f"exported {path}: {name}, step {ck['step']}, {n_params(model)} parameters, "
        f"{os.path.getsize(path)} bytes (EMA weights)")


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------

def init_weights(model, cfg, path):
    """Loads a model file's tensors into model; its architecture must equal cfg's."""
    loaded, meta = nets.load_model_file(path)
    free = {"ema_rate", "dropout", "init_scale", "beta_min", "beta_max", "sigma_min", "sigma_max",
            "num_scales"}  # training settings, not the network's shape
    want = {k: v for k, v in nets.architecture_fields(cfg).items() if k not in free}
    have = {k: v for k, v in nets.architecture_fields(nets.config_from_metadata(meta)).items()
            if k not in free}
    if want != have:
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        raise ValueError(f"architecture differs from the config in {diff}")
    model.load_state_dict(loaded.state_dict())
    log(f"initialised from {path} ({meta.get('name')})")


def command_line():
    argv = [sys.executable, os.path.relpath(os.path.abspath(sys.argv[0]))] + sys.argv[1:]
    cmd = " ".join(shlex.quote(a) for a in argv)
    try:
        nice = os.nice(0)
    except OSError:
        nice = 0
    return (f"nice -n {nice} " if nice > 0 else "") + cmd


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="JSON config (required unless --resume/--export-only)")
    ap.add_argument("--name", required=True, help="run name: runs/<name>/; also the model name")
    ap.add_argument("--runs-dir", default="runs")
    ap.add_argument("--resume", action="store_true", help="continue from runs/<name>/checkpoint.pt")
    ap.add_argument("--steps", type=int, help="stop at this total step (default training.n_iters)")
    ap.add_argument("--max-minutes", type=float, help="stop cleanly after this much wall-clock time")
    ap.add_argument("--export", help="write the EMA weights as a scored .safetensors file at the end")
    ap.add_argument("--export-only", action="store_true",
                    help="load runs/<name>/checkpoint.pt and only --export it")
    ap.add_argument("--init-from", help="a new run starts from this model file's weights (e.g. a shipped "
                    "model's EMA weights); fresh optimizer and EMA; the architecture must match")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--ckpt-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    run_dir = os.path.join(a.runs_dir, a.name)
    ckpt_path = os.path.join(run_dir, "checkpoint.pt")
    t_start = time.time()

    ck = None
    if a.resume or a.export_only:
        if not os.path.isfile(ckpt_path):
            print(f"train: no checkpoint {ckpt_path} to resume from", file=sys.stderr)
            return 1
        ck = torch.load(ckpt_path, map_location="cpu")
        cfg = ck["config"]
        if a.config and load_config(a.config) != cfg:
            log(f"note: --config {a.config} differs from the checkpoint's config; using the checkpoint's")
    else:
        if not a.config:
            print("train: --config is required for a new run", file=sys.stderr)
            return 1
        if os.path.exists(ckpt_path):
            print(f"train: {ckpt_path} exists; use --resume (or another --name)", file=sys.stderr)
            return 1
        cfg = load_config(a.config)
    if a.init_from and (a.resume or a.export_only):
        print("train: --init-from starts a new run; it does not go with --resume or --export-only",
              file=sys.stderr)
        return 1
    if a.export_only and not a.export:
        print("train: --export-only needs --export PATH", file=sys.stderr)
        return 1

    s = training_settings(cfg)
    torch.manual_seed(s["seed"])
    np.random.seed(s["seed"])
    model = nets.build_model(cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=s["lr"], betas=(s["beta1"], 0.999), eps=s["adam_eps"],
                           weight_decay=s["weight_decay"])
    if a.init_from:
        try:
            init_weights(model, cfg, a.init_from)
        except (OSError, ValueError, KeyError) as e:
            print(f"train: --init-from {a.init_from}: {e}", file=sys.stderr)
            return 1
    ema = EMA(params, s["ema_rate"])
    step, elapsed0, history, commands = 0, 0.0, [], []
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        ema.load_state_dict(ck["ema"])
        step, elapsed0 = int(ck["step"]), float(ck["elapsed_s"])
        history, commands = list(ck["history"]), list(ck["commands"])
        torch.set_rng_state(ck["torch_rng"])
        np.random.set_state(ck["numpy_rng"])
    if a.export_only:
        export_model(a.export, cfg, a.name, model, ema,
                     {"step": step, "elapsed_s": elapsed0, "history": history, "commands": commands})
        return 0
    commands.append(command_line())

    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    try:
        images, labels = datasets.load(s["dataset"], "train")
    except datasets.DatasetMissing as e:
        print(f"train: {e}", file=sys.stderr)
        return 1
    is_clf = cfg["model"]["name"] == "classifier"
    if is_clf and labels is None:
        print(f"train: dataset {s['dataset']} has no labels for a classifier", file=sys.stderr)
        return 1
    batches = Batches(images, s["batch_size"], s["seed"], labels if is_clf else None)
    stop_step = a.steps if a.steps is not None else s["n_iters"]
    deadline = t_start + 60.0 * a.max_minutes if a.max_minutes is not None else None

    stop_reason = [None]

    def on_signal(signum, _frame):
        stop_reason[0] = f"signal {signum}"
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    log(f"run {a.name}: {cfg['model']['name']} {n_params(model)} parameters, SDE {s['sde']}, "
        f"batch {s['batch_size']}, {schedule_text(s)}, ema {s['ema_rate']}, clip {s['grad_clip']}, "
        f"{torch.get_num_threads()} threads; step {step} -> {stop_step}"
        + (f", at most {a.max_minutes:g} min" if a.max_minutes is not None else ""))

    def checkpoint():
        save_checkpoint(ckpt_path, {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "ema": ema.state_dict(),
            "step": step, "elapsed_s": elapsed0 + (time.time() - t_start),
            "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
            "history": history, "commands": commands, "config": cfg,
            "n_params": n_params(model)})

    csv_path = os.path.join(run_dir, "loss.csv")
    if not os.path.exists(csv_path):
        with open(csv_path, "w") as f:
            f.write("step,loss,lr,elapsed_min\n")

    model.train()
    run_losses = []
    t_win, step_win = time.time(), step
    first_step = step
    t_loop = time.time()
    while step < stop_step:
        if deadline is not None and time.time() >= deadline:
            stop_reason[0] = f"--max-minutes {a.max_minutes:g} reached"
        if stop_reason[0]:
            break
        lr = lr_at(step, s)
        for g in opt.param_groups:
            g["lr"] = lr
        u8, y = batches.get(step)
        x0 = scale_batch(u8, s)
        loss = classifier_loss(model, s, x0, y) if is_clf else dsm_loss(model, cfg, s, x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if s["grad_clip"] >= 0:
            torch.nn.utils.clip_grad_norm_(params, max_norm=s["grad_clip"])
        opt.step()
        ema.update(params)
        step += 1
        lv = float(loss.detach())
        if not math.isfinite(lv):
            log(f"loss is {lv} at step {step}; stopping without checkpointing this state")
            return 2
        run_losses.append(lv)
        if step % a.log_every == 0 or step == stop_step:
            now = time.time()
            mean_loss = float(np.mean(run_losses))
            run_losses = []
            sps = (step - step_win) / max(1e-9, now - t_win)
            avg_sps = (step - first_step) / max(1e-9, now - t_loop)
            t_win, step_win = now, step
            rem = (stop_step - step) / max(1e-9, avg_sps)
            if deadline is not None:
                rem = min(rem, max(0.0, deadline - now))
            el = elapsed0 + (now - t_start)
            history.append((step, mean_loss))
            log(f"step {step:6d}  loss {mean_loss:.5f}  lr {lr:.2e}  {sps:.2f} steps/s "
                f"({1 / max(sps, 1e-9):.2f} s/step)  elapsed {el / 60:.1f} min  ETA {rem / 60:.1f} min")
            with open(csv_path, "a") as f:
                f.write(f"{step},{mean_loss:.6f},{lr:.6g},{el / 60:.3f}\n")
        if a.ckpt_every > 0 and step % a.ckpt_every == 0:
            checkpoint()
    if run_losses:
        history.append((step, float(np.mean(run_losses))))
    checkpoint()
    log(f"stopped at step {step} ({stop_reason[0] or 'step limit reached'}); checkpoint {ckpt_path}")
    if a.export:
        export_model(a.export, cfg, a.name, model, ema,
                     {"step": step, "elapsed_s": elapsed0 + (time.time() - t_start),
                      "history": history, "commands": commands})
    return 0


if __name__ == "__main__":
    sys.exit(main())
