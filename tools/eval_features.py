"""Feature extractors for FID (tools/evaluate.py) and the evaluation classifier.

Nothing pretrained exists on this machine (no Inception weights), so each dataset gets its own
extractor, both stored in tools/data/ and both taking 8-bit images:

* Fashion-MNIST: `FmnistEvalCNN`, a small clean-image classifier trained here
  (`evaluate.py train-eval-classifier`; tools/data/fmnist-eval-cnn.safetensors). Layers:
  conv3x3 1->16, BN, ReLU; conv3x3 16->32, BN, ReLU; 2x2 max pool; conv3x3 32->64, BN, ReLU;
  2x2 max pool; flatten (64*7*7); Linear -> 128, BN, ReLU  = the FID features (128-d);
  dropout 0.3; Linear -> 10 logits. Input u8 / 127.5 - 1. It is unrelated to the
  noise-conditional guidance classifier (nets.NoiseClassifier): it never sees noisy images and
  is trained with a different objective and seed, so it can judge guided samples independently.
  Training: the 60,000 training images, batch 128, AdamW (lr 2e-3, weight decay 5e-4, 200
  warm-up steps then cosine to 0), label smoothing 0.05, 6 epochs; augmentation: random shift
  of up to 2 pixels (zero fill) and a horizontal flip with probability 1/2. Epoch e's order
  and augmentation come from numpy default_rng([seed, e]), weights and dropout from
  torch.manual_seed(seed), one thread, so a rerun on the same torch build gives the same file.

* emoji-32: `RandomFeatureCNN`, an untrained network with fixed random weights
  (tools/data/emoji-random-cnn.safetensors, written once by `evaluate.py
  make-emoji-features`). Emoji have no class labels, so a classifier like the Fashion-MNIST one
  cannot be trained, and the Fashion-MNIST network sees 28x28 gray clothing, a different
  domain. A self-supervised net (autoencoder, contrastive) trained on the ~3,500 training emoji
  was the other option; it would cost CPU-minutes on a busy two-core machine, tie the metric to
  the training split the generator also saw, and its quality would itself need validating.
  Random convolutional features are the cheap, label-free, training-free choice that
  measures local colour, edge and texture statistics at several scales; they are known to
  track sample quality less semantically than trained features. Architecture (no biases,
  He-normal weights std sqrt(2 / fan_in) from numpy default_rng(seed), stored as float16
  because numpy does not promise the same stream in every version): input u8 / 127.5 - 1;
  four stages, each conv3x3 + ReLU, with 2x2 average pooling before stages 2-4
  (3->32 at 32x32, 32->64 at 16x16, 64->128 at 8x8, 128->128 at 4x4); the features are the
  spatial means of all four stages' outputs, concatenated (32+64+128+128 = 352-d).
  README ("Evaluation") lists a sensitivity check: FID of degraded real images against the
  floor, for both extractors.
"""

import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import safetensors_io as st  # noqa: E402

DATA_DIR = os.path.join(HERE, "data")
FMNIST_CNN = os.path.join(DATA_DIR, "fmnist-eval-cnn.safetensors")
EMOJI_NET = os.path.join(DATA_DIR, "emoji-random-cnn.safetensors")

FMNIST_TRAIN = {"epochs": 6, "batch": 128, "lr": 2e-3, "weight_decay": 5e-4, "warmup": 200,
                "label_smoothing": 0.05, "max_shift": 2, "seed": 0}
EMOJI_SEED = 0


def _u8_to_input(x):
    """uint8 (numpy or torch) -> float32 torch in [-1, 1]."""
    return torch.as_tensor(np.asarray(x)).float() / 127.5 - 1.0


# ---- Fashion-MNIST evaluation classifier -----------------------------------------------------

class FmnistEvalCNN(nn.Module):
    """conv-conv-pool-conv-pool-fc128-fc10 on 1x28x28; features() gives the 128-d FID features."""

    def __init__(self, c=(16, 32, 64), feat=128, classes=10, dropout=0.3):
        super().__init__()
        c1, c2, c3 = c
        self.arch = {"channels": list(c), "features": feat, "classes": classes, "dropout": dropout}
        self.conv1, self.bn1 = nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1)
        self.conv2, self.bn2 = nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2)
        self.conv3, self.bn3 = nn.Conv2d(c2, c3, 3, padding=1), nn.BatchNorm2d(c3)
        self.fc1, self.bn4 = nn.Linear(c3 * 49, feat), nn.BatchNorm1d(feat)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(feat, classes)

    def features(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.max_pool2d(F.relu(self.bn2(self.conv2(h))), 2)
        h = F.max_pool2d(F.relu(self.bn3(self.conv3(h))), 2)
        return F.relu(self.bn4(self.fc1(h.flatten(1))))

    def forward(self, x):
        return self.fc2(self.drop(self.features(x)))


def augment(x, rng, max_shift):
    """uint8 [B,1,28,28] torch -> shifted (zero fill) and half horizontally flipped copies."""
    B, _, H, W = x.shape
    p = max_shift
    pad = F.pad(x, (p, p, p, p))
    dy = torch.from_numpy(rng.integers(0, 2 * p + 1, B))
    dx = torch.from_numpy(rng.integers(0, 2 * p + 1, B))
    flip = torch.from_numpy(rng.random(B) < 0.5)
    rows = dy[:, None] + torch.arange(H)[None]                     # [B, H]
    cols = dx[:, None] + torch.arange(W)[None]                     # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    b = torch.arange(B)[:, None, None]
    return pad[b, 0, rows[:, :, None], cols[:, None, :]][:, None]


def _lr_at(step, total, base, warmup):
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@torch.no_grad()
def predict(model, u8, batch=500, what="logits"):
    """Logits ([N,10]) or features ([N,128]) of uint8 [N,1,28,28] (or [N,28,28]), eval mode."""
    model.eval()
    if u8.ndim == 3:
        u8 = u8[:, None]
    out = []
    for i in range(0, len(u8), batch):
        x = _u8_to_input(u8[i:i + batch])
        out.append(model(x) if what == "logits" else model.features(x))
    return torch.cat(out).numpy().astype(np.float64)


def train_fmnist_cnn(x_train, y_train, x_test, y_test, cfg=None, log=print):
    """Trains FmnistEvalCNN (cfg: FMNIST_TRAIN overrides); returns (model, info dict)."""
    cfg = dict(FMNIST_TRAIN, **(cfg or {}))
    torch.manual_seed(cfg["seed"])
    model = FmnistEvalCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    xt = torch.from_numpy(np.ascontiguousarray(x_train)).reshape(-1, 1, 28, 28)
    yt = torch.from_numpy(y_train.astype(np.int64))
    n, bs = len(xt), cfg["batch"]
    steps_per_epoch = n // bs
    total = cfg["epochs"] * steps_per_epoch
    t0, step = time.time(), 0
    for e in range(cfg["epochs"]):
        rng = np.random.default_rng([cfg["seed"], e])
        perm = torch.from_numpy(rng.permutation(n))
        model.train()
        run_loss = run_acc = 0.0
        for k in range(steps_per_epoch):
            idx = perm[k * bs:(k + 1) * bs]
            xb = _u8_to_input(augment(xt[idx], rng, cfg["max_shift"]))
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, total, cfg["lr"], cfg["warmup"])
            logits = model(xb)
            loss = F.cross_entropy(logits, yt[idx], label_smoothing=cfg["label_smoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            run_loss += loss.item()
            run_acc += (logits.argmax(1) == yt[idx]).float().mean().item()
        acc = float((predict(model, x_test).argmax(1) == y_test).mean())
        log(f"train-eval-classifier: epoch {e + 1}/{cfg['epochs']} loss {run_loss / steps_per_epoch:.4f} "
            f"train acc {run_acc / steps_per_epoch:.4f} test acc {acc:.4f} "
            f"({(time.time() - t0) / 60:.1f} min)")
    info = {"config": cfg, "steps": total, "test_accuracy": round(acc, 4),
            "minutes": round((time.time() - t0) / 60, 2), "torch": torch.__version__,
            "threads": torch.get_num_threads()}
    return model, info


def save_fmnist_cnn(model, path, info):
    meta = {"kind": "fmnist-eval-cnn", "architecture": model.arch, "input": "u8 / 127.5 - 1",
            "features": "ReLU(BN(fc1)), 128-d", **info}
    st.save(path, {k: v.detach().clone() for k, v in model.state_dict().items()},
            metadata={"evaluate": json.dumps(meta, sort_keys=True)})


def load_fmnist_cnn(path=FMNIST_CNN):
    """(FmnistEvalCNN in eval mode, metadata dict)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing (run tools/evaluate.py train-eval-classifier)")
    tensors, raw = st.load_torch(path)
    meta = json.loads(raw.get("evaluate", "{}"))
    if meta.get("kind") != "fmnist-eval-cnn":
        raise ValueError(f"{path} is not an fmnist-eval-cnn file")
    a = meta["architecture"]
    model = FmnistEvalCNN(tuple(a["channels"]), a["features"], a["classes"], a["dropout"])
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model, meta


# ---- emoji random-feature network ------------------------------------------------------------

EMOJI_STAGES = [(3, 32), (32, 64), (64, 128), (128, 128)]


def make_random_cnn_weights(seed=EMOJI_SEED, stages=EMOJI_STAGES):
    rng = np.random.default_rng(seed)
    return {f"conv{i}.weight": (rng.standard_normal((co, ci, 3, 3)) * math.sqrt(2.0 / (9 * ci)))
            .astype(np.float32) for i, (ci, co) in enumerate(stages)}


class RandomFeatureCNN(nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.w = [torch.as_tensor(weights[f"conv{i}.weight"]) for i in range(len(weights))]

    @torch.no_grad()
    def features(self, x):
        feats, h = [], x
        for i, w in enumerate(self.w):
            if i:
                h = F.avg_pool2d(h, 2)
            h = F.relu(F.conv2d(h, w, padding=1))
            feats.append(h.mean(dim=(2, 3)))
        return torch.cat(feats, 1)


def save_random_cnn(path, seed=EMOJI_SEED):
    meta = {"kind": "random-feature-cnn", "seed": seed, "stages": EMOJI_STAGES,
            "input": "u8 / 127.5 - 1", "features": "concatenated spatial means, 352-d",
            "init": "He normal, numpy default_rng(seed), no biases"}
    st.save(path, make_random_cnn_weights(seed), metadata={"evaluate": json.dumps(meta)},
            dtype="F16")


def load_random_cnn(path=EMOJI_NET):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing (run tools/evaluate.py make-emoji-features)")
    tensors, raw = st.load(path)
    tensors = {k: v.astype(np.float32) for k, v in tensors.items()}
    if json.loads(raw.get("evaluate", "{}")).get("kind") != "random-feature-cnn":
        raise ValueError(f"{path} is not a random-feature-cnn file")
    return RandomFeatureCNN(tensors)


# ---- dispatch --------------------------------------------------------------------------------

def feature_fn(dataset):
    """(description, fn: uint8 [N,C,H,W] -> float64 [N,d]) for 'fashion-mnist' or 'emoji-32'."""
    if dataset == "fashion-mnist":
        model, meta = load_fmnist_cnn()

        def fn(u8):
            return predict(model, u8, what="features")
        return (f"fmnist-eval-cnn fc128 (tools/data/fmnist-eval-cnn.safetensors, "
                f"test accuracy {meta.get('test_accuracy')})"), fn
    if dataset == "emoji-32":
        net = load_random_cnn()

        def fn(u8):
            out = [net.features(_u8_to_input(u8[i:i + 500])) for i in range(0, len(u8), 500)]
            return torch.cat(out).numpy().astype(np.float64)
        return "emoji-random-cnn 352-d (tools/data/emoji-random-cnn.safetensors, untrained)", fn
    raise ValueError(f"unknown dataset {dataset!r} (fashion-mnist or emoji-32)")
