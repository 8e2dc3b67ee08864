"""PyTorch reference implementation of the score networks that `scored` runs.

Written from /work/shared/spec/score-sde.md (sections 2, 7, 8); the state-dict keys,
module order and parameter layouts are those of the official score_sde_pytorch code,
so its checkpoints load into these modules unchanged (after stripping `module.`).

Networks (chosen by config model.name):

* `ncsnpp`     NCSN++ and DDPM++ (models/ncsnpp.py): resblock `biggan` or `ddpm`,
               FIR or naive resampling, skip_rescale, progressive none/output_skip/
               residual, progressive_input none/input_skip/residual, combine sum/cat,
               Fourier or positional embedding, conditional, scale_by_sigma, centered.
* `ddpm`       the score-SDE DDPM model (models/ddpm.py).
* `classifier` a small time(noise)-dependent classifier for class guidance (our own
               design, see `NoiseClassifier`).

Configs are plain nested dicts (or any object with attribute access, e.g. an
ml_collections.ConfigDict) with the official field names: model.name, model.nf, ...,
data.image_size, data.num_channels, data.centered, training.sde, training.continuous.
`resolve_config` fills the defaults listed in DEFAULTS and returns a plain dict.

Image size: every level halves the feature map, so data.image_size must be divisible
by 2**(L-1) with L = len(ch_mult) (28 works for L <= 3: 28 -> 14 -> 7; 32 for L <= 6).
Non-square images are not supported (attention is keyed on the feature-map width).

Also: `score_fn` (spec section 2: network output -> score), SDE helpers, the FIR
resampling primitives (section 7.5), and `load_model_file` for our .safetensors model
format (written by tools/convert_checkpoint.py and tools/make_golden.py).
"""

import functools
import json
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "resolve_config", "build_model", "get_sigmas", "NCSNpp", "DDPM", "NoiseClassifier",
    "score_fn", "sde_from_config", "marginal_std", "classifier_log_prob_grad",
    "upfirdn2d", "upsample_2d", "downsample_2d", "conv_downsample_2d",
    "naive_upsample_2d", "naive_downsample_2d", "load_model_file", "config_from_metadata",
    "model_metadata", "architecture_fields",
]

_REQUIRED = object()
_MISSING = object()

# Defaults used when a config omits a field (official leaf configs set them all).
DEFAULTS = {
    "ncsnpp": {
        "nf": _REQUIRED, "ch_mult": _REQUIRED, "num_res_blocks": _REQUIRED,
        "attn_resolutions": _REQUIRED, "resamp_with_conv": True, "fir": False,
        "fir_kernel": [1, 3, 3, 1], "skip_rescale": True, "resblock_type": "biggan",
        "progressive": "none", "progressive_input": "none", "progressive_combine": "sum",
        "embedding_type": "positional", "fourier_scale": 16.0, "init_scale": 0.0,
        "conditional": True, "dropout": 0.1, "scale_by_sigma": False,
        "num_scales": 1000, "sigma_min": 0.01, "sigma_max": 50.0,
    },
    "ddpm": {
        "nf": _REQUIRED, "ch_mult": _REQUIRED, "num_res_blocks": _REQUIRED,
        "attn_resolutions": _REQUIRED, "resamp_with_conv": True, "conditional": True,
        "dropout": 0.1, "scale_by_sigma": False,
        "num_scales": 1000, "sigma_min": 0.01, "sigma_max": 50.0,
    },
    "classifier": {
        "nf": _REQUIRED, "ch_mult": _REQUIRED, "num_res_blocks": _REQUIRED,
        "num_classes": _REQUIRED, "fourier_scale": 16.0, "dropout": 0.0,
    },
}
DATA_DEFAULTS = {"image_size": _REQUIRED, "num_channels": 3, "centered": False}


# --------------------------------------------------------------------------------------
# config handling
# --------------------------------------------------------------------------------------

def cfg_get(cfg, path, default=_REQUIRED):
    """cfg_get(config, 'model.nf'): dict keys or attributes, dotted path."""
    cur = cfg
    for part in path.split("."):
        if isinstance(cur, dict):
            if part in cur:
                cur = cur[part]
                continue
        elif cur is not None:
            try:
                cur = getattr(cur, part)
                continue
            except (AttributeError, KeyError):
                pass
        if default is _REQUIRED:
            raise KeyError(f"config field {path!r} is missing")
        return default
    return cur


def _plain(v):
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def resolve_config(config):
    """Plain nested dict {'model': {...all fields...}, 'data': {...}, 'training': {...}}."""
    if isinstance(config, dict) and config.get("_resolved"):
        return config
    name = cfg_get(config, "model.name")
    if name not in DEFAULTS:
        raise ValueError(f"model.name {name!r} is not supported (ncsnpp, ddpm, classifier)")
    model = {"name": name}
    for k, dv in DEFAULTS[name].items():
        v = cfg_get(config, "model." + k, dv)
        if v is _REQUIRED:
            raise KeyError(f"config field 'model.{k}' is missing")
        model[k] = _plain(v)
    data = {}
    for k, dv in DATA_DEFAULTS.items():
        v = cfg_get(config, "data." + k, _MISSING)
        if v is _MISSING:  # the classifier may carry them flat in model.*
            v = cfg_get(config, "model." + k, dv)
        if v is _REQUIRED:
            raise KeyError(f"config field 'data.{k}' is missing")
        data[k] = _plain(v)
    for k in ("nf", "num_res_blocks", "num_scales", "num_classes"):
        if k in model:
            model[k] = int(model[k])
    model["ch_mult"] = [int(c) for c in model["ch_mult"]]
    if "attn_resolutions" in model:
        model["attn_resolutions"] = [int(r) for r in model["attn_resolutions"]]
    for k in ("sigma_min", "sigma_max", "fourier_scale", "init_scale", "dropout"):
        if k in model:
            model[k] = float(model[k])
    data["image_size"] = int(data["image_size"])
    data["num_channels"] = int(data["num_channels"])
    data["centered"] = bool(data["centered"])
    training = {
        "sde": cfg_get(config, "training.sde", None),
        "continuous": bool(cfg_get(config, "training.continuous", True)),
    }
    L = len(model["ch_mult"])
    if L < 1:
        raise ValueError("model.ch_mult must not be empty")
    if data["image_size"] % (2 ** (L - 1)) != 0:
        raise ValueError(
            f"data.image_size {data['image_size']} must be divisible by 2**(L-1) = {2 ** (L - 1)} "
            f"(L = len(ch_mult) = {L}); e.g. 28 allows at most 3 levels")
    return {"_resolved": True, "model": model, "data": data, "training": training}


def architecture_fields(config):
    """The model.* fields, resolved (what our model files store as "architecture")."""
    return dict(resolve_config(config)["model"])


def get_sigmas(model_cfg):
    """The `sigmas` buffer: exp(linspace(ln sigma_max, ln sigma_min, num_scales)), float64."""
    return np.exp(np.linspace(np.log(model_cfg["sigma_max"]), np.log(model_cfg["sigma_min"]),
                              model_cfg["num_scales"]))


# --------------------------------------------------------------------------------------
# primitive layers
# --------------------------------------------------------------------------------------

def _groups(c):
    g = min(c // 4, 32)
    if g < 1:
        raise ValueError(f"GroupNorm over {c} channels: need at least 4 channels")
    return g


def group_norm(c, groups=None):
    groups = _groups(c) if groups is None else groups
    if c % groups:
        raise ValueError(f"GroupNorm: {c} channels not divisible into {groups} groups")
    return nn.GroupNorm(groups, c, eps=1e-6)


def conv3x3(cin, cout, stride=1, padding=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=padding, bias=True)


def conv1x1(cin, cout):
    return nn.Conv2d(cin, cout, 1, stride=1, padding=0, bias=True)


class NIN(nn.Module):
    """Per-pixel linear map; W[in, out] (transposed w.r.t. a 1x1 conv), b[out]."""

    def __init__(self, cin, cout):
        super().__init__()
        self.W = nn.Parameter(torch.empty(cin, cout))
        self.b = nn.Parameter(torch.zeros(cout))
        nn.init.normal_(self.W, std=1.0 / math.sqrt(cin))

    def forward(self, x):
        return torch.einsum("bchw,co->bohw", x, self.W) + self.b[None, :, None, None]


class GaussianFourierProjection(nn.Module):
    """e = [sin(u*W*2*pi), cos(u*W*2*pi)] (float32, evaluated left to right); W frozen."""

    def __init__(self, embedding_size, scale=1.0):
        super().__init__()
        self.W = nn.Parameter(torch.randn(embedding_size) * scale, requires_grad=False)

    def forward(self, u):
        proj = u[:, None] * self.W[None, :] * 2 * math.pi
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


def positional_embedding(t, dim, max_positions=10000):
    """Sinusoidal embedding of float labels t[B] -> [B, dim] (sin block first)."""
    half = dim // 2
    c = math.log(max_positions) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -c)
    a = t.float()[:, None] * freqs[None, :]
    e = torch.cat([torch.sin(a), torch.cos(a)], dim=1)
    if dim % 2 == 1:
        e = F.pad(e, (0, 1))
    return e


# --------------------------------------------------------------------------------------
# FIR resampling (spec 7.5)
# --------------------------------------------------------------------------------------

def _kernel2d(k):
    k = torch.as_tensor(k, dtype=torch.float32)
    if k.ndim == 1:
        k = torch.outer(k, k)
    return k / k.sum()


def upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
    """Per channel and axis: insert up-1 zeros after each sample, zero-pad pad[0] before
    and pad[1] after, convolve with `kernel` (true convolution), keep every down-th.
    One depthwise conv (groups = C) with stride `down`: keeping every down-th output of a
    valid convolution is the strided convolution."""
    B, C, H, W = x.shape
    y = x
    if up > 1:
        z = y.new_zeros(B, C, H * up, W * up)
        z[:, :, ::up, ::up] = y
        y = z
    y = F.pad(y, (pad[0], pad[1], pad[0], pad[1]))
    w = torch.flip(kernel, [0, 1])[None, None].to(dtype=y.dtype, device=y.device)
    return F.conv2d(y, w.expand(C, 1, -1, -1).contiguous(), stride=down, groups=C)


def upsample_2d(x, k=(1, 3, 3, 1), factor=2, gain=1.0):
    K = _kernel2d(k) * (gain * factor ** 2)
    p = K.shape[0] - factor
    return upfirdn2d(x, K, up=factor, pad=((p + 1) // 2 + factor - 1, p // 2))


def downsample_2d(x, k=(1, 3, 3, 1), factor=2, gain=1.0):
    K = _kernel2d(k) * gain
    p = K.shape[0] - factor
    return upfirdn2d(x, K, down=factor, pad=((p + 1) // 2, p // 2))


def conv_downsample_2d(x, w, k=(1, 3, 3, 1), factor=2, gain=1.0):
    """FIR blur (pads (2,2) for k=[1,3,3,1] and a 3x3 w) then stride-`factor` valid conv."""
    K = _kernel2d(k) * gain
    p = (K.shape[0] - factor) + (w.shape[-1] - 1)
    x = upfirdn2d(x, K, pad=((p + 1) // 2, p // 2))
    return F.conv2d(x, w, stride=factor, padding=0)


def naive_upsample_2d(x, factor=2):
    B, C, H, W = x.shape
    return x[:, :, :, None, :, None].expand(B, C, H, factor, W, factor).reshape(
        B, C, H * factor, W * factor)


def naive_downsample_2d(x, factor=2):
    B, C, H, W = x.shape
    return x.reshape(B, C, H // factor, factor, W // factor, factor).mean(dim=(3, 5))


# --------------------------------------------------------------------------------------
# blocks (spec 7.3)
# --------------------------------------------------------------------------------------

class ResnetBlockBigGANpp(nn.Module):
    """GroupNorm_0, Conv_0, Dense_0, GroupNorm_1, Conv_1, [Conv_2 1x1 iff in!=out|up|down]."""

    def __init__(self, in_ch, out_ch=None, temb_dim=None, up=False, down=False, fir=False,
                 fir_kernel=(1, 3, 3, 1), skip_rescale=True, dropout=0.0, act=None):
        super().__init__()
        out_ch = out_ch if out_ch else in_ch
        self.GroupNorm_0 = group_norm(in_ch)
        self.Conv_0 = conv3x3(in_ch, out_ch)
        if temb_dim is not None:
            self.Dense_0 = nn.Linear(temb_dim, out_ch)
        self.GroupNorm_1 = group_norm(out_ch)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = conv3x3(out_ch, out_ch)
        self.has_shortcut = in_ch != out_ch or up or down
        if self.has_shortcut:
            self.Conv_2 = conv1x1(in_ch, out_ch)
        self.up, self.down, self.fir = up, down, fir
        self.fir_kernel = tuple(fir_kernel)
        self.skip_rescale = skip_rescale
        self.act = act or nn.SiLU()

    def _resample(self, t):
        if self.up:
            return upsample_2d(t, self.fir_kernel) if self.fir else naive_upsample_2d(t)
        if self.down:
            return downsample_2d(t, self.fir_kernel) if self.fir else naive_downsample_2d(t)
        return t

    def forward(self, x, temb=None):
        h = self.act(self.GroupNorm_0(x))
        h = self._resample(h)
        x = self._resample(x)
        h = self.Conv_0(h)
        if temb is not None:
            h = h + self.Dense_0(self.act(temb))[:, :, None, None]
        h = self.Conv_1(self.Dropout_0(self.act(self.GroupNorm_1(h))))
        if self.has_shortcut:
            x = self.Conv_2(x)
        return (x + h) / math.sqrt(2.0) if self.skip_rescale else x + h


class ResnetBlockDDPMpp(nn.Module):
    """GroupNorm_0, Conv_0, Dense_0, GroupNorm_1, Conv_1, [NIN_0 iff in!=out].
    groups=None -> min(C/4, 32) (layerspp); groups=32 for models/ddpm.py (ResnetBlockDDPM)."""

    def __init__(self, in_ch, out_ch=None, temb_dim=None, skip_rescale=False, dropout=0.0,
                 groups=None, act=None):
        super().__init__()
        out_ch = out_ch if out_ch else in_ch
        self.GroupNorm_0 = group_norm(in_ch, groups)
        self.Conv_0 = conv3x3(in_ch, out_ch)
        if temb_dim is not None:
            self.Dense_0 = nn.Linear(temb_dim, out_ch)
        self.GroupNorm_1 = group_norm(out_ch, groups)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = conv3x3(out_ch, out_ch)
        if in_ch != out_ch:
            self.NIN_0 = NIN(in_ch, out_ch)
        self.out_ch = out_ch
        self.skip_rescale = skip_rescale
        self.act = act or nn.SiLU()

    def forward(self, x, temb=None):
        h = self.act(self.GroupNorm_0(x))
        h = self.Conv_0(h)
        if temb is not None:
            h = h + self.Dense_0(self.act(temb))[:, :, None, None]
        h = self.Conv_1(self.Dropout_0(self.act(self.GroupNorm_1(h))))
        if x.shape[1] != self.out_ch:
            x = self.NIN_0(x)
        return (x + h) / math.sqrt(2.0) if self.skip_rescale else x + h


class AttnBlockpp(nn.Module):
    """Single-head self-attention over all H*W positions; GroupNorm_0, NIN_0..NIN_3."""

    def __init__(self, channels, skip_rescale=False, groups=None):
        super().__init__()
        self.GroupNorm_0 = group_norm(channels, groups)
        self.NIN_0 = NIN(channels, channels)
        self.NIN_1 = NIN(channels, channels)
        self.NIN_2 = NIN(channels, channels)
        self.NIN_3 = NIN(channels, channels)
        self.skip_rescale = skip_rescale

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.GroupNorm_0(x)
        q = self.NIN_0(h).reshape(B, C, H * W)
        k = self.NIN_1(h).reshape(B, C, H * W)
        v = self.NIN_2(h).reshape(B, C, H * W)
        w = torch.einsum("bcp,bcq->bpq", q, k) * (int(C) ** (-0.5))
        w = torch.softmax(w, dim=-1)
        o = torch.einsum("bpq,bcq->bcp", w, v).reshape(B, C, H, W)
        h = self.NIN_3(o)
        return (x + h) / math.sqrt(2.0) if self.skip_rescale else x + h


class Combine(nn.Module):
    """Conv_0 1x1 (dim1 -> dim2); sum: Conv_0(x_pyr) + h; cat: [Conv_0(x_pyr), h]."""

    def __init__(self, dim1, dim2, method="sum"):
        super().__init__()
        self.Conv_0 = conv1x1(dim1, dim2)
        self.method = method

    def forward(self, x, y):
        h = self.Conv_0(x)
        if self.method == "cat":
            return torch.cat([h, y], dim=1)
        return h + y


class Downsample(nn.Module):
    """layerspp.Downsample / layers.Downsample (fir=False)."""

    def __init__(self, in_ch, out_ch=None, with_conv=False, fir=False, fir_kernel=(1, 3, 3, 1)):
        super().__init__()
        out_ch = out_ch if out_ch else in_ch
        self.fir, self.with_conv = fir, with_conv
        self.fir_kernel = tuple(fir_kernel)
        if with_conv and fir:
            self.Conv2d_0 = _FIRConvDown(in_ch, out_ch)
        elif with_conv:
            self.Conv_0 = conv3x3(in_ch, out_ch, stride=2, padding=0)

    def forward(self, x):
        if self.fir:
            if self.with_conv:
                return self.Conv2d_0(x, self.fir_kernel)
            return downsample_2d(x, self.fir_kernel)
        if self.with_conv:
            return self.Conv_0(F.pad(x, (0, 1, 0, 1)))
        return F.avg_pool2d(x, 2, stride=2)


class _FIRConvDown(nn.Module):
    """Parameters `weight[out,in,3,3]`, `bias[out]`: FIR blur, stride-2 valid conv, + bias."""

    def __init__(self, in_ch, out_ch, kernel=3):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(in_ch * kernel * kernel))

    def forward(self, x, fir_kernel):
        return conv_downsample_2d(x, self.weight, fir_kernel) + self.bias.reshape(1, -1, 1, 1)


class Upsample(nn.Module):
    """layerspp.Upsample / layers.Upsample.  FIR + conv (the fused transposed conv) is broken
    in the official PyTorch code, no checkpoint can use it, and it is refused here."""

    def __init__(self, in_ch, out_ch=None, with_conv=False, fir=False, fir_kernel=(1, 3, 3, 1)):
        super().__init__()
        out_ch = out_ch if out_ch else in_ch
        if fir and with_conv:
            raise NotImplementedError(
                "Upsample with fir=True and with_conv=True (upsample_conv_2d) is broken in the "
                "official PyTorch code and is not supported (progressive='residual' or "
                "resblock_type='ddpm' with resamp_with_conv need fir=False)")
        self.fir, self.with_conv = fir, with_conv
        self.fir_kernel = tuple(fir_kernel)
        if with_conv:
            self.Conv_0 = conv3x3(in_ch, out_ch)

    def forward(self, x):
        if self.fir:
            return upsample_2d(x, self.fir_kernel)
        h = naive_upsample_2d(x)
        return self.Conv_0(h) if self.with_conv else h


# --------------------------------------------------------------------------------------
# initialisation (training only; never matters for converted checkpoints)
# --------------------------------------------------------------------------------------

def _variance_scaling_(w, scale, fan_in, fan_out):
    scale = 1e-10 if scale == 0 else scale
    var = scale / ((fan_in + fan_out) / 2.0)
    with torch.no_grad():
        w.uniform_(-math.sqrt(3 * var), math.sqrt(3 * var))


def default_init_(model, init_scale=0.0):
    """Variance-scaling (fan_avg, uniform) weights, zero biases, like the official code;
    the last layer of each residual branch gets scale init_scale (0 -> 1e-10)."""
    last_names = ("Conv_1", "NIN_3")
    for mname, mod in model.named_modules():
        leaf = mname.rsplit(".", 1)[-1]
        scale = init_scale if leaf in last_names else 1.0
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            w = mod.weight
            rf = w[0, 0].numel() if w.ndim == 4 else 1
            _variance_scaling_(w, scale, w.shape[1] * rf, w.shape[0] * rf)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, NIN):
            _variance_scaling_(mod.W, scale, mod.W.shape[1], mod.W.shape[0])
            nn.init.zeros_(mod.b)
        elif isinstance(mod, _FIRConvDown):
            w = mod.weight
            _variance_scaling_(w, 1.0, w.shape[1] * 9, w.shape[0] * 9)
            nn.init.zeros_(mod.bias)


# --------------------------------------------------------------------------------------
# NCSN++ / DDPM++ (spec 7.6, 7.7)
# --------------------------------------------------------------------------------------

class NCSNpp(nn.Module):
    """NCSN++ / DDPM++.  forward(x[B,C,H,W], time_cond[B]):
    fourier: time_cond is the noise level sigma (> 0), the embedding takes ln(sigma) and
    scale_by_sigma divides by it; positional: time_cond is a float label (t*999, t*(N-1)
    or an integer index), scale_by_sigma divides by sigmas[floor(time_cond)]."""

    def __init__(self, config, init=True):
        super().__init__()
        cfg = resolve_config(config)
        m, d = cfg["model"], cfg["data"]
        if m["name"] != "ncsnpp":
            raise ValueError("NCSNpp needs model.name 'ncsnpp'")
        self.config = cfg
        self.register_buffer("sigmas", torch.tensor(get_sigmas(m), dtype=torch.float64))
        self.act = nn.SiLU()
        nf = self.nf = m["nf"]
        ch_mult = m["ch_mult"]
        nrb = self.num_res_blocks = m["num_res_blocks"]
        self.attn_resolutions = list(m["attn_resolutions"])
        L = self.num_resolutions = len(ch_mult)
        res = self.all_resolutions = [d["image_size"] // (2 ** i) for i in range(L)]
        self.conditional = m["conditional"]
        self.centered = d["centered"]
        self.scale_by_sigma = m["scale_by_sigma"]
        fir, fir_kernel = m["fir"], tuple(m["fir_kernel"])
        skip_rescale = m["skip_rescale"]
        rt = self.resblock_type = m["resblock_type"].lower()
        prog = self.progressive = m["progressive"].lower()
        prog_in = self.progressive_input = m["progressive_input"].lower()
        emb = self.embedding_type = m["embedding_type"].lower()
        combine = m["progressive_combine"].lower()
        for val, ok, what in ((rt, ("biggan", "ddpm"), "resblock_type"),
                              (prog, ("none", "output_skip", "residual"), "progressive"),
                              (prog_in, ("none", "input_skip", "residual"), "progressive_input"),
                              (emb, ("fourier", "positional"), "embedding_type"),
                              (combine, ("sum", "cat"), "progressive_combine")):
            if val not in ok:
                raise ValueError(f"model.{what} {val!r} not in {ok}")
        channels = d["num_channels"]
        temb_dim = 4 * nf
        dropout = m["dropout"]

        if rt == "biggan":
            Res = functools.partial(ResnetBlockBigGANpp, temb_dim=temb_dim, fir=fir,
                                    fir_kernel=fir_kernel, skip_rescale=skip_rescale,
                                    dropout=dropout, act=self.act)
        else:
            Res = functools.partial(ResnetBlockDDPMpp, temb_dim=temb_dim,
                                    skip_rescale=skip_rescale, dropout=dropout, act=self.act)
        Attn = functools.partial(AttnBlockpp, skip_rescale=skip_rescale)

        mods = []
        if emb == "fourier":
            mods.append(GaussianFourierProjection(nf, m["fourier_scale"]))
            emb_dim = 2 * nf
        else:
            emb_dim = nf
        if self.conditional:
            mods.append(nn.Linear(emb_dim, temb_dim))
            mods.append(nn.Linear(temb_dim, temb_dim))

        mods.append(conv3x3(channels, nf))
        hs_c = [nf]
        cin = nf
        pyr_in = channels
        for lvl in range(L):
            for _ in range(nrb):
                mods.append(Res(cin, nf * ch_mult[lvl]))
                cin = nf * ch_mult[lvl]
                if res[lvl] in self.attn_resolutions:
                    mods.append(Attn(cin))
                hs_c.append(cin)
            if lvl != L - 1:
                if rt == "biggan":
                    mods.append(Res(cin, down=True))
                else:
                    mods.append(Downsample(cin, with_conv=m["resamp_with_conv"], fir=fir,
                                           fir_kernel=fir_kernel))
                if prog_in == "input_skip":
                    mods.append(Combine(pyr_in, cin, combine))
                    if combine == "cat":
                        cin *= 2
                elif prog_in == "residual":
                    mods.append(Downsample(pyr_in, cin, with_conv=True, fir=fir,
                                           fir_kernel=fir_kernel))
                    pyr_in = cin
                hs_c.append(cin)

        cin = hs_c[-1]
        mods.append(Res(cin))
        mods.append(Attn(cin))
        mods.append(Res(cin))

        pyr_ch = 0
        for lvl in reversed(range(L)):
            for _ in range(nrb + 1):
                mods.append(Res(cin + hs_c.pop(), nf * ch_mult[lvl]))
                cin = nf * ch_mult[lvl]
            if res[lvl] in self.attn_resolutions:
                mods.append(Attn(cin))
            if prog != "none":
                if lvl == L - 1 or prog == "output_skip":
                    mods.append(group_norm(cin))
                    out_c = channels if prog == "output_skip" else cin
                    mods.append(conv3x3(cin, out_c))
                    pyr_ch = out_c
                else:  # residual, lvl < L-1
                    mods.append(Upsample(pyr_ch, cin, with_conv=True, fir=fir,
                                         fir_kernel=fir_kernel))
                    pyr_ch = cin
            if lvl != 0:
                if rt == "biggan":
                    mods.append(Res(cin, up=True))
                else:
                    mods.append(Upsample(cin, with_conv=m["resamp_with_conv"], fir=fir,
                                         fir_kernel=fir_kernel))
        assert not hs_c
        if prog != "output_skip":
            mods.append(group_norm(cin))
            mods.append(conv3x3(cin, channels))
        self.all_modules = nn.ModuleList(mods)
        self.fir, self.fir_kernel, self.skip_rescale = fir, fir_kernel, skip_rescale
        if init:
            default_init_(self, m["init_scale"])

    def _pyr_down(self, x):
        return downsample_2d(x, self.fir_kernel) if self.fir else F.avg_pool2d(x, 2, stride=2)

    def _pyr_up(self, x):
        return upsample_2d(x, self.fir_kernel) if self.fir else naive_upsample_2d(x)

    def _sum(self, a, b):
        return (a + b) / math.sqrt(2.0) if self.skip_rescale else a + b

    def forward(self, x, time_cond):
        mods = self.all_modules
        i = 0
        if self.embedding_type == "fourier":
            used_sigmas = time_cond
            temb = mods[i](torch.log(time_cond))
            i += 1
        else:
            used_sigmas = self.sigmas[time_cond.long()]
            temb = positional_embedding(time_cond, self.nf)
        if self.conditional:
            temb = mods[i](temb)
            i += 1
            temb = mods[i](self.act(temb))
            i += 1
        else:
            temb = None

        if not self.centered:
            x = 2 * x - 1.0
        input_pyramid = x if self.progressive_input != "none" else None

        hs = [mods[i](x)]
        i += 1
        biggan = self.resblock_type == "biggan"
        L = self.num_resolutions
        for lvl in range(L):
            for _ in range(self.num_res_blocks):
                h = mods[i](hs[-1], temb)
                i += 1
                if h.shape[-1] in self.attn_resolutions:
                    h = mods[i](h)
                    i += 1
                hs.append(h)
            if lvl != L - 1:
                h = mods[i](hs[-1], temb) if biggan else mods[i](hs[-1])
                i += 1
                if self.progressive_input == "input_skip":
                    input_pyramid = self._pyr_down(input_pyramid)
                    h = mods[i](input_pyramid, h)
                    i += 1
                elif self.progressive_input == "residual":
                    input_pyramid = mods[i](input_pyramid)
                    i += 1
                    input_pyramid = self._sum(input_pyramid, h)
                    h = input_pyramid
                hs.append(h)

        h = hs[-1]
        h = mods[i](h, temb)
        h = mods[i + 1](h)
        h = mods[i + 2](h, temb)
        i += 3

        pyramid = None
        for lvl in reversed(range(L)):
            for _ in range(self.num_res_blocks + 1):
                h = mods[i](torch.cat([h, hs.pop()], dim=1), temb)
                i += 1
            if h.shape[-1] in self.attn_resolutions:
                h = mods[i](h)
                i += 1
            if self.progressive != "none":
                if lvl == L - 1:
                    pyramid = mods[i + 1](self.act(mods[i](h)))
                    i += 2
                elif self.progressive == "output_skip":
                    pyramid = self._pyr_up(pyramid) + mods[i + 1](self.act(mods[i](h)))
                    i += 2
                else:  # residual
                    pyramid = mods[i](pyramid)
                    i += 1
                    pyramid = self._sum(pyramid, h)
                    h = pyramid
            if lvl != 0:
                h = mods[i](h, temb) if biggan else mods[i](h)
                i += 1
        assert not hs
        if self.progressive == "output_skip":
            h = pyramid
        else:
            h = mods[i + 1](self.act(mods[i](h)))
            i += 2
        assert i == len(mods)
        if self.scale_by_sigma:
            h = h / used_sigmas.to(h.dtype).reshape(-1, 1, 1, 1)
        return h


# --------------------------------------------------------------------------------------
# DDPM (spec 7.8)
# --------------------------------------------------------------------------------------

class DDPM(nn.Module):
    """score-SDE DDPM (models/ddpm.py).  forward(x, labels): positional embedding of the
    float labels; scale_by_sigma divides by sigmas[labels] (integer labels).  GroupNorm
    uses 32 groups everywhere, so every channel count must be a multiple of 32."""

    def __init__(self, config, init=True):
        super().__init__()
        cfg = resolve_config(config)
        m, d = cfg["model"], cfg["data"]
        if m["name"] != "ddpm":
            raise ValueError("DDPM needs model.name 'ddpm'")
        self.config = cfg
        self.register_buffer("sigmas", torch.tensor(get_sigmas(m), dtype=torch.float64))
        self.act = nn.SiLU()
        nf = self.nf = m["nf"]
        ch_mult = m["ch_mult"]
        nrb = self.num_res_blocks = m["num_res_blocks"]
        self.attn_resolutions = list(m["attn_resolutions"])
        L = self.num_resolutions = len(ch_mult)
        res = [d["image_size"] // (2 ** i) for i in range(L)]
        self.conditional = m["conditional"]
        self.centered = d["centered"]
        self.scale_by_sigma = m["scale_by_sigma"]
        channels = d["num_channels"]
        wc = m["resamp_with_conv"]
        Res = functools.partial(ResnetBlockDDPMpp, temb_dim=4 * nf, skip_rescale=False,
                                dropout=m["dropout"], groups=32, act=self.act)
        Attn = functools.partial(AttnBlockpp, skip_rescale=False, groups=32)
        mods = []
        if self.conditional:
            mods.append(nn.Linear(nf, 4 * nf))
            mods.append(nn.Linear(4 * nf, 4 * nf))
        mods.append(conv3x3(channels, nf))
        hs_c = [nf]
        cin = nf
        for lvl in range(L):
            for _ in range(nrb):
                mods.append(Res(cin, nf * ch_mult[lvl]))
                cin = nf * ch_mult[lvl]
                if res[lvl] in self.attn_resolutions:
                    mods.append(Attn(cin))
                hs_c.append(cin)
            if lvl != L - 1:
                mods.append(Downsample(cin, with_conv=wc))
                hs_c.append(cin)
        cin = hs_c[-1]
        mods += [Res(cin), Attn(cin), Res(cin)]
        for lvl in reversed(range(L)):
            for _ in range(nrb + 1):
                mods.append(Res(cin + hs_c.pop(), nf * ch_mult[lvl]))
                cin = nf * ch_mult[lvl]
            if res[lvl] in self.attn_resolutions:
                mods.append(Attn(cin))
            if lvl != 0:
                mods.append(Upsample(cin, with_conv=wc))
        assert not hs_c
        mods.append(group_norm(cin, 32))
        mods.append(conv3x3(cin, channels))
        self.all_modules = nn.ModuleList(mods)
        if init:
            default_init_(self, 0.0)

    def forward(self, x, labels):
        mods = self.all_modules
        i = 0
        if self.conditional:
            temb = positional_embedding(labels, self.nf)
            temb = mods[1](self.act(mods[0](temb)))
            i = 2
        else:
            temb = None
        h = x if self.centered else 2 * x - 1.0
        hs = [mods[i](h)]
        i += 1
        L = self.num_resolutions
        for lvl in range(L):
            for _ in range(self.num_res_blocks):
                h = mods[i](hs[-1], temb)
                i += 1
                if h.shape[-1] in self.attn_resolutions:
                    h = mods[i](h)
                    i += 1
                hs.append(h)
            if lvl != L - 1:
                hs.append(mods[i](hs[-1]))
                i += 1
        h = hs[-1]
        h = mods[i](h, temb)
        h = mods[i + 1](h)
        h = mods[i + 2](h, temb)
        i += 3
        for lvl in reversed(range(L)):
            for _ in range(self.num_res_blocks + 1):
                h = mods[i](torch.cat([h, hs.pop()], dim=1), temb)
                i += 1
            if h.shape[-1] in self.attn_resolutions:
                h = mods[i](h)
                i += 1
            if lvl != 0:
                h = mods[i](h)
                i += 1
        assert not hs
        h = mods[i + 1](self.act(mods[i](h)))
        i += 2
        assert i == len(mods)
        if self.scale_by_sigma:
            h = h / self.sigmas[labels.long()].to(h.dtype).reshape(-1, 1, 1, 1)
        return h


# --------------------------------------------------------------------------------------
# noise-conditional classifier (our design)
# --------------------------------------------------------------------------------------

class NoiseClassifier(nn.Module):
    r"""Noise-level-dependent classifier p(y | x_t, sigma) for class guidance.

    Config: model.name = 'classifier', model.nf, model.ch_mult (L = len), model.num_res_blocks,
    model.num_classes (K), model.fourier_scale, model.dropout (training only);
    data.image_size, data.num_channels (C), data.centered.  C_l = nf * ch_mult[l].
    image_size must be divisible by 2**(L-1).

    Inputs: x[B, C, H, W] in the model's data units (the same units as the paired score
    model: [0, 1] when centered is false, [-1, 1] when true), and sigma[B] > 0 = the
    marginal standard deviation of the SDE at time t (spec 6.3: sigma_b =
    sde.marginal_prob(x, t) std): VE sigma_min*(sigma_max/sigma_min)^t, VP
    sqrt(1 - e^{2L(t)}), sub-VP 1 - e^{2L(t)}.

    Modules (state dict all_modules.<i>.<param>), in this order:
      0  GaussianFourierProjection  W[nf] (frozen, drawn N(0, fourier_scale^2))
      1  Linear  weight[4nf, 2nf], bias[4nf]
      2  Linear  weight[4nf, 4nf], bias[4nf]
      3  conv3x3 weight[nf, C, 3, 3], bias[nf]
      then for l = 0..L-1, num_res_blocks times: ResnetBlockBigGANpp(in -> C_l) with
         temb_dim 4nf, no up/down, skip_rescale=True, GroupNorm groups min(ch/4, 32),
         keys GroupNorm_0, Conv_0, Dense_0, GroupNorm_1, Conv_1, and Conv_2 (1x1) iff in != C_l
         (in = nf for the first block, then the previous block's out)
      M-2  GroupNorm(min(C_{L-1}/4, 32), C_{L-1}), eps 1e-6   weight, bias
      M-1  Linear  weight[K, C_{L-1}], bias[K]

    Forward (act = SiLU, x*sigmoid(x); GN = GroupNorm eps 1e-6 with biased variance):
      if not centered: x = 2x - 1
      u = ln(sigma);  p_k = u * W_k * 2 * pi (float32, left to right)
      e = [sin(p_0..p_{nf-1}), cos(p_0..p_{nf-1})]                       (2nf)
      temb = Linear_2(act(Linear_1(e)))                                  (4nf)
      h = conv3x3(x)
      for l = 0..L-1:
          repeat num_res_blocks:
              r = Conv_0(act(GN_0(h))) + Dense_0(act(temb))[:, :, None, None]
              r = Conv_1(act(GN_1(r)))
              h = ((Conv_2(h) if in != out else h) + r) / sqrt(2)
          if l < L-1: h = 2x2 mean pooling of h (stride 2; no parameters)
      g = mean over the H*W positions of act(GN(h))                      [B, C_{L-1}]
      logits = Linear(g)                                                 [B, K]
    Guidance gradient: grad_x sum_b log_softmax(logits)[b, y_b] (see classifier_log_prob_grad).
    """

    def __init__(self, config, init=True):
        super().__init__()
        cfg = resolve_config(config)
        m, d = cfg["model"], cfg["data"]
        if m["name"] != "classifier":
            raise ValueError("NoiseClassifier needs model.name 'classifier'")
        self.config = cfg
        self.act = nn.SiLU()
        nf = self.nf = m["nf"]
        self.centered = d["centered"]
        self.num_res_blocks = m["num_res_blocks"]
        self.num_resolutions = len(m["ch_mult"])
        mods = [GaussianFourierProjection(nf, m["fourier_scale"]),
                nn.Linear(2 * nf, 4 * nf), nn.Linear(4 * nf, 4 * nf),
                conv3x3(d["num_channels"], nf)]
        cin = nf
        for mult in m["ch_mult"]:
            for _ in range(m["num_res_blocks"]):
                mods.append(ResnetBlockBigGANpp(cin, nf * mult, temb_dim=4 * nf, skip_rescale=True,
                                                dropout=m["dropout"], act=self.act))
                cin = nf * mult
        mods.append(group_norm(cin))
        mods.append(nn.Linear(cin, m["num_classes"]))
        self.all_modules = nn.ModuleList(mods)
        if init:
            default_init_(self, 1.0)

    def forward(self, x, sigma):
        mods = self.all_modules
        if not self.centered:
            x = 2 * x - 1.0
        e = mods[0](torch.log(sigma))
        temb = mods[2](self.act(mods[1](e)))
        h = mods[3](x)
        i = 4
        for lvl in range(self.num_resolutions):
            for _ in range(self.num_res_blocks):
                h = mods[i](h, temb)
                i += 1
            if lvl != self.num_resolutions - 1:
                h = F.avg_pool2d(h, 2, stride=2)
        g = self.act(mods[i](h)).mean(dim=(2, 3))
        return mods[i + 1](g)


def classifier_log_prob_grad(clf, x, sigma, y):
    """(log p(y_b | x_b, sigma_b) [B], grad_x sum_b log softmax(logits)[b, y_b] [B,C,H,W])."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logp = torch.log_softmax(clf(x, sigma), dim=-1)
        sel = logp.gather(1, y.long().reshape(-1, 1)).squeeze(1)
        (g,) = torch.autograd.grad(sel.sum(), x)
    return sel.detach(), g


# --------------------------------------------------------------------------------------
# construction
# --------------------------------------------------------------------------------------

def build_model(config, init=True):
    cfg = resolve_config(config)
    name = cfg["model"]["name"]
    cls = {"ncsnpp": NCSNpp, "ddpm": DDPM, "classifier": NoiseClassifier}[name]
    return cls(cfg, init=init)


# --------------------------------------------------------------------------------------
# SDEs and score (spec 1, 2)
# --------------------------------------------------------------------------------------

_SDE_NAMES = {"vesde": "ve", "vpsde": "vp", "subvpsde": "subvp", "ve": "ve", "vp": "vp",
              "subvp": "subvp"}


def sde_from_config(config):
    """{"type": "ve", "sigma_min", "sigma_max", "N"} or {"type": "vp"|"subvp", "beta_min",
    "beta_max", "N"} from training.sde and model.{sigma_*, beta_*, num_scales}."""
    name = str(cfg_get(config, "training.sde")).lower()
    if name not in _SDE_NAMES:
        raise ValueError(f"training.sde {name!r} is not vesde, vpsde or subvpsde")
    typ = _SDE_NAMES[name]
    N = int(cfg_get(config, "model.num_scales", 1000))
    if typ == "ve":
        return {"type": "ve", "sigma_min": float(cfg_get(config, "model.sigma_min", 0.01)),
                "sigma_max": float(cfg_get(config, "model.sigma_max", 50.0)), "N": N}
    return {"type": typ, "beta_min": float(cfg_get(config, "model.beta_min", 0.1)),
            "beta_max": float(cfg_get(config, "model.beta_max", 20.0)), "N": N}


def marginal_std(sde, t):
    t = torch.as_tensor(t)
    if sde["type"] == "ve":
        return sde["sigma_min"] * (sde["sigma_max"] / sde["sigma_min"]) ** t
    b0, b1 = sde["beta_min"], sde["beta_max"]
    lmc = -0.25 * t ** 2 * (b1 - b0) - 0.5 * t * b0
    if sde["type"] == "vp":
        return torch.sqrt(1.0 - torch.exp(2.0 * lmc))
    return 1.0 - torch.exp(2.0 * lmc)


def marginal_mean_coeff(sde, t):
    """E[x_t | x_0] = coeff * x_0: 1 for VE, exp(-t^2 (b1-b0)/4 - t b0/2) for VP and sub-VP."""
    t = torch.as_tensor(t)
    if sde["type"] == "ve":
        return torch.ones_like(t)
    b0, b1 = sde["beta_min"], sde["beta_max"]
    return torch.exp(-0.25 * t ** 2 * (b1 - b0) - 0.5 * t * b0)


@torch.no_grad()
def classifier_predictions(model, sde, x0, t, generator=None, batch=500):
    """The noise-conditional classifier's argmax labels for x0 (model units, [n, C, H, W]) at
    time t: x_t = coeff(t) x0 + std(t) z with z drawn from `generator`, or without the noise
    term when generator is None (clean data at t = eps).  The SDE's coefficients are computed
    in float64, as the C engine computes them, then rounded to float32."""
    n = x0.shape[0]
    tt = torch.full((n,), float(t), dtype=torch.float64)
    std = marginal_std(sde, tt).float()
    xt = marginal_mean_coeff(sde, tt).float().view(-1, 1, 1, 1) * x0
    if generator is not None:
        xt = xt + std.view(-1, 1, 1, 1) * torch.randn(x0.shape, generator=generator)
    was_training = model.training
    model.eval()
    pred = torch.cat([model(xt[i:i + batch], std[i:i + batch]).argmax(1) for i in range(0, n, batch)])
    model.train(was_training)
    return pred


def sqrt_1m_alphas_cumprod(sde):
    N = sde["N"]
    betas = torch.linspace(sde["beta_min"] / N, sde["beta_max"] / N, N, dtype=torch.float32)
    ac = torch.cumprod(1.0 - betas, dim=0)
    return torch.sqrt(1.0 - ac)


def network_label(sde, t, continuous):
    """The raw `time_cond` fed to the network for times t[B] (spec 2)."""
    if sde["type"] in ("vp", "subvp"):
        if continuous or sde["type"] == "subvp":
            return t * 999
        return t * (sde["N"] - 1)
    if continuous:
        return marginal_std(sde, t)
    return torch.round((1.0 - t) * (sde["N"] - 1)).long()


def score_fn(model, config, sde, x, t, continuous=None):
    """s(x, t) exactly as models/utils.py:get_score_fn (eval mode)."""
    if continuous is None:
        continuous = bool(cfg_get(config, "training.continuous", True))
    if isinstance(sde, str) or not isinstance(sde, dict):
        sde = sde_from_config(config)
    label = network_label(sde, t, continuous)
    out = model(x, label)
    if sde["type"] in ("vp", "subvp"):
        if continuous or sde["type"] == "subvp":
            std = marginal_std(sde, t)
        else:
            std = sqrt_1m_alphas_cumprod(sde).to(x.device)[label.long()]
        return -out / std.to(out.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return out


# --------------------------------------------------------------------------------------
# our model file (.safetensors with "scored" metadata)
# --------------------------------------------------------------------------------------

def model_metadata(config, name, sde, continuous, labels=(), card=None, kind=None):
    """The JSON object stored under __metadata__["scored"]."""
    cfg = resolve_config(config)
    d = cfg["data"]
    arch = dict(cfg["model"])
    if kind is None:
        kind = "classifier" if arch["name"] == "classifier" else "network"
    return {
        "format": 1,
        "kind": kind,
        "name": name,
        "architecture": arch,
        "sde": sde,
        "continuous": bool(continuous),
        "shape": [d["num_channels"], d["image_size"], d["image_size"]],
        "centered": d["centered"],
        "labels": list(labels),
        "card": card or {},
    }


def config_from_metadata(meta):
    """Rebuilds a resolved config dict from the "scored" metadata object."""
    C, H, W = meta["shape"]
    if H != W:
        raise ValueError("only square images are supported")
    sde = meta.get("sde") or {}
    sde_name = {"ve": "vesde", "vp": "vpsde", "subvp": "subvpsde"}.get(sde.get("type"))
    return resolve_config({
        "model": dict(meta["architecture"]),
        "data": {"image_size": H, "num_channels": C, "centered": meta["centered"]},
        "training": {"sde": sde_name, "continuous": meta.get("continuous", True)},
    })


def load_model_file(path):
    """(model in eval mode with the file's weights, metadata dict) from our format."""
    try:
        from . import safetensors_io as st  # type: ignore
    except ImportError:
        import safetensors_io as st  # type: ignore
    tensors, raw_meta = st.load_torch(path)
    if "scored" not in raw_meta:
        raise ValueError(f"{path}: no 'scored' metadata (not a scored model file)")
    meta = json.loads(raw_meta["scored"])
    model = build_model(config_from_metadata(meta), init=False)
    want = model.state_dict()
    sd = {}
    for k, v in want.items():
        if k not in tensors:
            raise ValueError(f"{path}: tensor {k} missing")
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise ValueError(f"{path}: tensor {k} has shape {tuple(tensors[k].shape)}, "
                             f"expected {tuple(v.shape)}")
        sd[k] = tensors[k].to(v.dtype)
    extra = set(tensors) - set(want)
    if extra:
        raise ValueError(f"{path}: unexpected tensors {sorted(extra)[:5]}")
    model.load_state_dict(sd, strict=True)
    model.eval()
    return model, meta
