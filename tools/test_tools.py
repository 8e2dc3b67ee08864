"""Tests for tools/nets.py, safetensors_io.py, convert_checkpoint.py and the golden files.

    /usr/bin/python3 -m pytest -q tools/test_tools.py
"""

import json
import math
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import convert_checkpoint as cc  # noqa: E402
import nets  # noqa: E402
import safetensors_io as st  # noqa: E402

GOLDEN = os.path.join(HERE, "..", "tests", "data", "golden")

# --------------------------------------------------------------------------------------
# official configurations: parameter counts (spec 7.9)
# --------------------------------------------------------------------------------------

_NCSNPP_CIFAR = dict(name="ncsnpp", nf=128, ch_mult=(1, 2, 2, 2), num_res_blocks=4,
                     attn_resolutions=(16,), resamp_with_conv=True, fir=True,
                     fir_kernel=[1, 3, 3, 1], skip_rescale=True, resblock_type="biggan",
                     progressive="none", progressive_input="residual", progressive_combine="sum",
                     embedding_type="fourier", fourier_scale=16, conditional=True,
                     scale_by_sigma=True, init_scale=0.0, dropout=0.1)
_DDPMPP = dict(_NCSNPP_CIFAR, fir=False, progressive_input="none", embedding_type="positional",
               scale_by_sigma=False)
_HIGHRES = dict(_NCSNPP_CIFAR, progressive="output_skip", progressive_input="input_skip")

OFFICIAL = {
    # name: (model fields, image size, modules, parameter tensors, parameters)
    "ve/cifar10_ncsnpp_continuous": (_NCSNPP_CIFAR, 32, 59, 571, 62_758_915),
    "ve/cifar10_ncsnpp_deep_continuous": (dict(_NCSNPP_CIFAR, num_res_blocks=8), 32, 95, 963,
                                          107_587_075),
    "ve/cifar10_ncsnpp": (dict(_NCSNPP_CIFAR, embedding_type="positional"), 32, 58, 570, None),
    "vp/cifar10_ddpmpp_continuous": (_DDPMPP, 32, 55, 564, 61_804_419),
    "vp/cifar10_ddpmpp_deep_continuous": (dict(_DDPMPP, num_res_blocks=8), 32, 91, 956,
                                          106_632_579),
    "vp/ddpm/cifar10": (dict(name="ddpm", nf=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2,
                             attn_resolutions=(16,), resamp_with_conv=True, conditional=True,
                             scale_by_sigma=False), 32, 37, 308, 35_218_947),
    "ve/church_ncsnpp_continuous": (dict(_HIGHRES, ch_mult=(1, 1, 2, 2, 2, 2, 2), num_res_blocks=2),
                                    256, 77, 645, 65_574_549),
    "ve/ffhq_ncsnpp_continuous": (dict(_HIGHRES, nf=16, ch_mult=(1, 2, 4, 8, 16, 32, 32, 32),
                                       num_res_blocks=1), 1024, 70, 553, 105_785_896),
}

# (key, shape) spot checks from the module-index tables of spec 7.9
SPOT = {
    "ve/cifar10_ncsnpp_continuous": [
        ("all_modules.0.W", [128]), ("all_modules.1.weight", [512, 256]),
        ("all_modules.2.weight", [512, 512]), ("all_modules.3.weight", [128, 3, 3, 3]),
        ("all_modules.8.Conv_2.weight", [128, 128, 1, 1]),
        ("all_modules.9.Conv2d_0.weight", [128, 3, 3, 3]), ("all_modules.9.Conv2d_0.bias", [128]),
        ("all_modules.10.Conv_2.weight", [256, 128, 1, 1]), ("all_modules.11.NIN_0.W", [256, 256]),
        ("all_modules.19.Conv2d_0.weight", [256, 128, 3, 3]),
        ("all_modules.25.Conv2d_0.weight", [256, 256, 3, 3]),
        ("all_modules.31.NIN_3.b", [256]), ("all_modules.33.Conv_0.weight", [256, 512, 3, 3]),
        ("all_modules.49.Conv_0.weight", [256, 384, 3, 3]), ("all_modules.50.GroupNorm_0.weight", [256]),
        ("all_modules.52.Conv_0.weight", [128, 384, 3, 3]), ("all_modules.56.Dense_0.weight", [128, 512]),
        ("all_modules.57.weight", [128]), ("all_modules.58.weight", [3, 128, 3, 3]),
        ("all_modules.58.bias", [3]), ("sigmas", [1000])],
    "vp/cifar10_ddpmpp_continuous": [
        ("all_modules.0.weight", [512, 128]), ("all_modules.2.weight", [128, 3, 3, 3]),
        ("all_modules.45.Conv_0.weight", [256, 384, 3, 3]), ("all_modules.46.NIN_2.W", [256, 256]),
        ("all_modules.48.Conv_2.weight", [128, 384, 1, 1]), ("all_modules.53.weight", [128]),
        ("all_modules.54.weight", [3, 128, 3, 3])],
    "vp/ddpm/cifar10": [
        ("all_modules.5.Conv_0.weight", [128, 128, 3, 3]), ("all_modules.6.NIN_0.W", [128, 256]),
        ("all_modules.7.NIN_0.W", [256, 256]), ("all_modules.22.Conv_0.weight", [256, 256, 3, 3]),
        ("all_modules.29.NIN_0.W", [384, 256]), ("all_modules.30.GroupNorm_0.weight", [256]),
        ("all_modules.35.weight", [128]), ("all_modules.36.weight", [3, 128, 3, 3])],
    "ve/church_ncsnpp_continuous": [
        ("all_modules.7.Conv_0.weight", [128, 3, 1, 1]), ("all_modules.15.Conv_0.weight", [256, 3, 1, 1]),
        ("all_modules.38.weight", [256]), ("all_modules.39.weight", [3, 256, 3, 3]),
        ("all_modules.62.Conv_0.weight", [256, 384, 3, 3]), ("all_modules.66.Conv_0.weight", [128, 384, 3, 3]),
        ("all_modules.75.weight", [128]), ("all_modules.76.weight", [3, 128, 3, 3])],
    "ve/ffhq_ncsnpp_continuous": [
        ("all_modules.0.W", [16]), ("all_modules.1.weight", [64, 32]), ("all_modules.2.weight", [64, 64]),
        ("all_modules.25.Conv_0.weight", [512, 3, 1, 1]), ("all_modules.33.weight", [3, 512, 3, 3]),
        ("all_modules.42.Conv_0.weight", [512, 768, 3, 3]), ("all_modules.57.Conv_0.weight", [64, 96, 3, 3]),
        ("all_modules.68.weight", [16]), ("all_modules.69.weight", [3, 16, 3, 3])],
}


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_official_parameter_counts(name):
    fields, size, n_mod, n_tensors, n_params = OFFICIAL[name]
    model = nets.build_model({"model": fields, "data": {"image_size": size, "num_channels": 3}},
                             init=False)
    params = list(model.named_parameters())
    assert len(model.all_modules) == n_mod
    assert len(params) == n_tensors
    if n_params is not None:
        assert sum(p.numel() for _, p in params) == n_params
    sd = model.state_dict()
    assert len(sd) == n_tensors + 1 and sd["sigmas"].dtype == torch.float64
    assert all(k == "sigmas" or k.startswith("all_modules.") for k in sd)
    for key, shape in SPOT.get(name, []):
        assert list(sd[key].shape) == shape, key
    trainable = [n for n, p in params if p.requires_grad]
    fourier = fields.get("embedding_type") == "fourier" and fields["name"] == "ncsnpp"
    assert len(trainable) == n_tensors - (1 if fourier else 0)
    if name == "ve/ffhq_ncsnpp_continuous":
        assert model.all_modules[68].num_groups == 4 and model.all_modules[63].num_groups == 8
    del model


def test_image_size_must_divide():
    cfg = {"model": dict(_DDPMPP, nf=8, ch_mult=(1, 2, 2, 2)), "data": {"image_size": 28}}
    with pytest.raises(ValueError, match="divisible by 2"):
        nets.build_model(cfg, init=False)
    cfg["model"]["ch_mult"] = (1, 2, 2)
    cfg["model"]["attn_resolutions"] = (14,)
    m = nets.build_model(dict(cfg, data={"image_size": 28, "num_channels": 1}))
    with torch.no_grad():
        y = m(torch.rand(2, 1, 28, 28), torch.tensor([10.0, 500.0]))
    assert y.shape == (2, 1, 28, 28) and torch.isfinite(y).all()


def test_broken_official_upsample_refused():
    cfg = {"model": dict(_NCSNPP_CIFAR, nf=8, ch_mult=(1, 2), progressive="residual"),
           "data": {"image_size": 8}}
    with pytest.raises(NotImplementedError, match="broken"):
        nets.build_model(cfg)


# --------------------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------------------

def test_safetensors_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    a32 = rng.standard_normal((3, 4, 5)).astype(np.float32)
    a64 = rng.standard_normal(7)
    i64 = np.arange(6, dtype=np.int64).reshape(2, 3)
    u8 = np.arange(5, dtype=np.uint8)
    tb = torch.randn(4, 3)
    tensors = {"w": a32, "sig": a64, "idx": i64, "u": u8, "t": tb, "scalar": np.float32(2.5),
               "empty": np.zeros((0, 3), np.float32)}
    p = tmp_path / "a.safetensors"
    st.save(p, tensors, {"k": "v", "scored": json.dumps({"x": 1})})
    raw = p.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert (8 + n) % 8 == 0
    header = json.loads(raw[8:8 + n])
    assert list(header)[0] == "__metadata__"
    assert header["w"]["dtype"] == "F32" and header["sig"]["dtype"] == "F64"
    assert header["idx"]["dtype"] == "I64" and header["w"]["shape"] == [3, 4, 5]
    got, meta = st.load(p)
    assert meta == {"k": "v", "scored": json.dumps({"x": 1})}
    assert list(got) == list(tensors)
    np.testing.assert_array_equal(got["w"], a32)
    np.testing.assert_array_equal(got["sig"], a64)
    np.testing.assert_array_equal(got["idx"], i64)
    np.testing.assert_array_equal(got["u"], u8)
    np.testing.assert_array_equal(got["t"], tb.numpy())
    assert got["scalar"].shape == () and got["scalar"] == 2.5
    assert got["empty"].shape == (0, 3)
    tt, _ = st.load_torch(p)
    assert tt["sig"].dtype == torch.float64 and torch.equal(tt["t"], tb)


def test_safetensors_f16_bf16(tmp_path):
    x = np.array([1.0, -2.5, 0.1, 3.14159, 65504.0, 1e-3, 0.0, -0.0], dtype=np.float32)
    p = tmp_path / "h.safetensors"
    st.save(p, {"h": x, "b": x, "i": np.arange(3)}, dtype={"h": "F16", "b": "BF16"})
    hdr, _, _ = st.read_header(str(p))
    assert hdr["h"]["dtype"] == "F16" and hdr["b"]["dtype"] == "BF16" and hdr["i"]["dtype"] == "I64"
    got, _ = st.load(p)
    np.testing.assert_array_equal(got["h"], x.astype(np.float16))
    # bfloat16 = top 16 bits of float32 after round-to-nearest-even
    want = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(got["b"], want)
    assert got["b"].dtype == np.float32
    raw, _ = st.load(p, bf16_as_float32=False)
    assert raw["b"].dtype == np.uint16 and raw["b"][0] == 0x3F80
    tt, _ = st.load_torch(p)
    assert tt["b"].dtype == torch.bfloat16 and tt["h"].dtype == torch.float16
    assert torch.equal(tt["b"], torch.from_numpy(x).to(torch.bfloat16))
    # whole-file conversion and torch bf16 input
    st.save(p, {"a": torch.from_numpy(x).to(torch.bfloat16), "c": x}, dtype="BF16")
    got, _ = st.load(p)
    np.testing.assert_array_equal(got["a"], want)
    np.testing.assert_array_equal(got["c"], want)
    # rounding: 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7 -> even (1)
    st.save(p, {"r": np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8], np.float32)}, dtype="BF16")
    np.testing.assert_array_equal(st.load(p)[0]["r"], [1.0, 1 + 2 ** -6])


def test_safetensors_refuses_corrupt(tmp_path):
    p = tmp_path / "c.safetensors"
    st.save(p, {"a": np.ones(4, np.float32), "b": np.ones(2, np.float32)})
    raw = bytearray(p.read_bytes())
    (tmp_path / "trunc.safetensors").write_bytes(bytes(raw[:-4]))
    with pytest.raises(ValueError):
        st.load(tmp_path / "trunc.safetensors")
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    hdr["a"]["data_offsets"] = [0, 12]
    h = json.dumps(hdr).encode()
    h += b" " * ((-(8 + len(h))) % 8)
    (tmp_path / "bad.safetensors").write_bytes(struct.pack("<Q", len(h)) + h + bytes(raw[8 + n:]))
    with pytest.raises(ValueError, match="bytes"):
        st.load(tmp_path / "bad.safetensors")
    (tmp_path / "short.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(ValueError):
        st.load(tmp_path / "short.safetensors")


# --------------------------------------------------------------------------------------
# converter
# --------------------------------------------------------------------------------------

DEFAULT_CFG = '''\
import ml_collections
import torch


def get_default_configs():
  config = ml_collections.ConfigDict()
  config.training = training = ml_collections.ConfigDict()
  training.sde = 'vesde'
  training.continuous = True
  config.sampling = sampling = ml_collections.ConfigDict()
  sampling.method = 'pc'
  sampling.predictor = 'reverse_diffusion'
  sampling.corrector = 'langevin'
  sampling.snr = 0.16
  sampling.n_steps_each = 1
  sampling.noise_removal = True
  config.data = data = ml_collections.ConfigDict()
  data.dataset = 'TOY'
  data.image_size = 16
  data.num_channels = 3
  data.centered = False
  config.model = model = ml_collections.ConfigDict()
  model.sigma_min = 0.01
  model.sigma_max = 50
  model.num_scales = 100
  model.beta_min = 0.1
  model.beta_max = 20.
  model.dropout = 0.1
  config.device = torch.device('cpu')
  return config
'''

LEAF_CFG = '''\
"""Toy NCSN++ config in the score_sde_pytorch style."""
from ml_collections import config_dict
from configs.default_toy_configs import get_default_configs


def get_config():
  config = get_default_configs()
  config.optim = config_dict.ConfigDict({'lr': 2e-4, 'nested': {'a': 1}})
  model = config.model
  model.name = 'ncsnpp'
  model.scale_by_sigma = True
  model.ema_rate = 0.999
  model.normalization = 'GroupNorm'
  model.nonlinearity = 'swish'
  model.nf = 8
  model.ch_mult = (1, 2)
  model.num_res_blocks = 1
  model.attn_resolutions = (8,)
  model.resamp_with_conv = True
  model.conditional = True
  model.fir = True
  model.fir_kernel = [1, 3, 3, 1]
  model.skip_rescale = True
  model.resblock_type = 'biggan'
  model.progressive = 'none'
  model.progressive_input = 'residual'
  model.progressive_combine = 'sum'
  model.attention_type = 'ddpm'
  model.init_scale = 0.
  model.fourier_scale = 16
  model.embedding_type = 'fourier'
  model.conv_size = 3
  assert config.optim.nested.a == 1
  return config
'''


@pytest.fixture()
def toy_repo(tmp_path):
    root = tmp_path / "score_sde_pytorch"
    (root / "configs" / "ve").mkdir(parents=True)
    (root / "configs" / "default_toy_configs.py").write_text(DEFAULT_CFG)
    (root / "configs" / "ve" / "toy_ncsnpp_continuous.py").write_text(LEAF_CFG)
    cfg_path = root / "configs" / "ve" / "toy_ncsnpp_continuous.py"
    cfg = cc.load_config(str(cfg_path))
    torch.manual_seed(0)
    model = nets.build_model(cfg)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    shadow = [p.detach() + 0.5 + 0.001 * j for j, (_, p) in enumerate(trainable)]
    ckpt = {"model": {"module." + k: v for k, v in model.state_dict().items()},
            "ema": {"decay": 0.999, "num_updates": 5, "shadow_params": shadow},
            "optimizer": {}, "step": 5}
    ck_path = tmp_path / "checkpoint_5.pth"
    torch.save(ckpt, ck_path)
    return {"root": root, "cfg_path": cfg_path, "cfg": cfg, "model": model, "ckpt": ckpt,
            "ck_path": ck_path, "shadow": shadow, "trainable": [n for n, _ in trainable]}


def test_config_loader(toy_repo):
    cfg = toy_repo["cfg"]
    assert cfg["model"]["ch_mult"] == [1, 2] and cfg["training"]["sde"] == "vesde"
    assert cfg["optim"]["nested"]["a"] == 1 and cfg["device"] == "cpu"
    assert "configs" not in sys.modules  # the fake package does not leak
    stub = sys.modules.get("ml_collections")
    assert stub is None or getattr(stub, "ConfigDict", None) is not cc.ConfigDict
    # loading twice works (the fake `configs` package is not cached between loads)
    assert cc.load_config(str(toy_repo["cfg_path"]))["model"]["nf"] == 8


def test_convert_ema(toy_repo, tmp_path):
    out = tmp_path / "toy.safetensors"
    rc = cc.main([str(toy_repo["ck_path"]), "--config", str(toy_repo["cfg_path"]), "--out", str(out)])
    assert rc == 0
    tensors, raw_meta = st.load_torch(out)
    sd = toy_repo["model"].state_dict()
    assert list(tensors) == list(sd)
    for n, s in zip(toy_repo["trainable"], toy_repo["shadow"]):
        assert torch.equal(tensors[n], s.float()), n
    assert torch.equal(tensors["all_modules.0.W"], sd["all_modules.0.W"])  # frozen W from 'model'
    assert tensors["sigmas"].dtype == torch.float64 and torch.equal(tensors["sigmas"], sd["sigmas"])
    meta = json.loads(raw_meta["scored"])
    assert meta["format"] == 1 and meta["kind"] == "network"
    assert meta["name"] == "ve_toy_ncsnpp_continuous"
    assert meta["sde"] == {"type": "ve", "sigma_min": 0.01, "sigma_max": 50.0, "N": 100}
    assert meta["continuous"] is True and meta["shape"] == [3, 16, 16] and meta["centered"] is False
    assert meta["architecture"]["progressive_input"] == "residual" and meta["labels"] == []
    assert meta["card"]["default_sampler"]["predictor"] == "reverse_diffusion"
    assert meta["card"]["source"]["step"] == 5 and meta["card"]["source"]["ema"] is True
    model, _ = nets.load_model_file(str(out))
    assert torch.equal(model.all_modules[3].weight, toy_repo["shadow"][4].float())

    # --no-ema: raw weights; JSON config gives the same network
    js = tmp_path / "toy.json"
    js.write_text(json.dumps(toy_repo["cfg"]))
    out2 = tmp_path / "raw.safetensors"
    assert cc.main([str(toy_repo["ck_path"]), "--config", str(js), "--out", str(out2), "--no-ema",
                    "--name", "toy", "--labels", "a,b"]) == 0
    t2, m2 = st.load_torch(out2)
    for k, v in sd.items():
        assert torch.equal(t2[k], v), k
    m2 = json.loads(m2["scored"])
    assert m2["name"] == "toy" and m2["labels"] == ["a", "b"] and m2["architecture"] == meta["architecture"]


def _refused(toy_repo, tmp_path, capsys, ckpt):
    bad = tmp_path / "bad.pth"
    torch.save(ckpt, bad)
    out = tmp_path / "bad.safetensors"
    rc = cc.main([str(bad), "--config", str(toy_repo["cfg_path"]), "--out", str(out)])
    assert rc == 1 and not out.exists()
    return capsys.readouterr().err


def test_convert_refuses_misshaped(toy_repo, tmp_path, capsys):
    ck = dict(toy_repo["ckpt"])
    ck["model"] = dict(ck["model"])
    ck["model"]["module.all_modules.4.Conv_0.weight"] = torch.zeros(8, 8, 1, 1)
    err = _refused(toy_repo, tmp_path, capsys, ck)
    assert "all_modules.4.Conv_0.weight" in err and "[8, 8, 1, 1]" in err and "[8, 8, 3, 3]" in err

    ck = dict(toy_repo["ckpt"])
    ema = dict(ck["ema"])
    ema["shadow_params"] = list(ema["shadow_params"])
    ema["shadow_params"][0] = torch.zeros(3, 3)  # all_modules.1.weight is [32, 16]
    ck["ema"] = ema
    err = _refused(toy_repo, tmp_path, capsys, ck)
    assert "all_modules.1.weight" in err and "[3, 3]" in err and "[32, 16]" in err

    ck = dict(toy_repo["ckpt"])
    ck["model"] = dict(ck["model"], **{"module.all_modules.99.weight": torch.zeros(2)})
    assert "all_modules.99.weight" in _refused(toy_repo, tmp_path, capsys, ck)

    ck = dict(toy_repo["ckpt"])
    ck["model"] = {k: v for k, v in ck["model"].items() if k != "module.all_modules.8.NIN_1.b"}
    assert "all_modules.8.NIN_1.b" in _refused(toy_repo, tmp_path, capsys, ck)

    ck = dict(toy_repo["ckpt"])
    ck["ema"] = dict(ck["ema"], shadow_params=ck["ema"]["shadow_params"][:-1])
    assert "shadow_params" in _refused(toy_repo, tmp_path, capsys, ck)


def test_convert_cli_subprocess(toy_repo, tmp_path):
    out = tmp_path / "cli.safetensors"
    r = subprocess.run([sys.executable, os.path.join(HERE, "convert_checkpoint.py"),
                        str(toy_repo["ck_path"]), "--config", str(toy_repo["cfg_path"]),
                        "--out", str(out), "--dtype", "bf16"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    hdr, meta, _ = st.read_header(str(out))
    assert hdr["sigmas"]["dtype"] == "F64" and hdr["all_modules.0.W"]["dtype"] == "F32"
    assert hdr["all_modules.3.weight"]["dtype"] == "BF16"
    assert json.loads(meta["scored"])["kind"] == "network"


# --------------------------------------------------------------------------------------
# golden files
# --------------------------------------------------------------------------------------

def _manifest():
    with open(os.path.join(GOLDEN, "manifest.json")) as f:
        return json.load(f)


def test_golden_files_small_and_listed():
    man = _manifest()
    names = {c["name"] for c in man["cases"]}
    assert {"ncsnpp_ve_fourier_fir_res", "ncsnpp_ve_skip_28x1", "ddpmpp_vp_positional",
            "ddpm_ve_discrete", "classifier_28x1"} <= names
    total = sum(os.path.getsize(os.path.join(GOLDEN, f)) for f in os.listdir(GOLDEN))
    assert total < 3_200_000


def _close(got, want, tol=1e-4):
    got = got.double()
    want = want.double()
    err = (got - want).abs().max().item()
    assert err <= tol * max(1.0, want.abs().max().item()), err


@pytest.mark.parametrize("case", [c["name"] for c in _manifest()["cases"]])
def test_golden_reproduces(case):
    c = next(c for c in _manifest()["cases"] if c["name"] == case)
    model, meta = nets.load_model_file(os.path.join(GOLDEN, c["model"]))
    ref, iometa = st.load_torch(os.path.join(GOLDEN, c["io"]))
    assert all(v.dtype == torch.float32 for v in ref.values())
    for key in ("format", "kind", "name", "architecture", "sde", "continuous", "shape",
                "centered", "labels", "card"):
        assert key in meta
    assert meta["shape"] == list(ref["x"].shape[1:])
    x = ref["x"].clone().requires_grad_(True)
    cfg = nets.config_from_metadata(meta)
    if meta["kind"] == "classifier":
        sig = nets.marginal_std(meta["sde"], ref["t"]).float()
        _close(sig, ref["sigma"], 1e-6)
        logits = model(x, ref["sigma"])
        _close(logits, ref["logits"])
        (vjp,) = torch.autograd.grad((logits * ref["v"]).sum(), x)
        _close(vjp, ref["vjp"])
        logp, grad = nets.classifier_log_prob_grad(model, ref["x"], ref["sigma"], ref["y"].long())
        _close(logp, ref["logp"])
        _close(grad, ref["grad"])
        assert len(meta["labels"]) == meta["architecture"]["num_classes"]
        return
    tc = nets.network_label(meta["sde"], ref["t"], meta["continuous"])
    _close(tc.float(), ref["time_cond"], 1e-6)
    out = model(x, ref["time_cond"])
    _close(out, ref["out"])
    (vjp,) = torch.autograd.grad((out * ref["v"]).sum(), x)
    _close(vjp, ref["vjp"])
    with torch.no_grad():
        _close(nets.score_fn(model, cfg, meta["sde"], ref["x"], ref["t"]), ref["score"])
    if case == "ddpmpp_vp_positional":
        with torch.no_grad():
            h = model.all_modules[2](ref["x"])
            _close(h, ref["act.all_modules.2"])
            emb = nets.positional_embedding(ref["time_cond"], model.nf)
            temb = model.all_modules[1](F.silu(model.all_modules[0](emb)))
            _close(temb, ref["act.temb"])
            _close(model.all_modules[3](h, temb), ref["act.all_modules.3"])


def test_classifier_docstring_formula():
    """Re-implement NoiseClassifier from its docstring with plain functional ops."""
    model, meta = nets.load_model_file(os.path.join(GOLDEN, "classifier_28x1.safetensors"))
    ref, _ = st.load_torch(os.path.join(GOLDEN, "classifier_28x1.io.safetensors"))
    sd = model.state_dict()
    a = meta["architecture"]
    L = len(a["ch_mult"])

    def gn(h, pre):
        return F.group_norm(h, min(h.shape[1] // 4, 32), sd[pre + "weight"], sd[pre + "bias"], 1e-6)

    def lin(h, pre):
        return h @ sd[pre + "weight"].T + sd[pre + "bias"]

    x, sigma = ref["x"], ref["sigma"]
    if not meta["centered"]:
        x = 2 * x - 1
    p = torch.log(sigma)[:, None] * sd["all_modules.0.W"][None] * 2 * math.pi
    temb = lin(F.silu(lin(torch.cat([torch.sin(p), torch.cos(p)], 1), "all_modules.1.")), "all_modules.2.")
    h = F.conv2d(x, sd["all_modules.3.weight"], sd["all_modules.3.bias"], padding=1)
    i = 4
    for lvl in range(L):
        for _ in range(a["num_res_blocks"]):
            pre = f"all_modules.{i}."
            r = F.conv2d(F.silu(gn(h, pre + "GroupNorm_0.")), sd[pre + "Conv_0.weight"], sd[pre + "Conv_0.bias"], padding=1)
            r = r + lin(F.silu(temb), pre + "Dense_0.")[:, :, None, None]
            r = F.conv2d(F.silu(gn(r, pre + "GroupNorm_1.")), sd[pre + "Conv_1.weight"], sd[pre + "Conv_1.bias"], padding=1)
            sc = F.conv2d(h, sd[pre + "Conv_2.weight"], sd[pre + "Conv_2.bias"]) if pre + "Conv_2.weight" in sd else h
            h = (sc + r) / math.sqrt(2)
            i += 1
        if lvl < L - 1:
            h = 0.25 * (h[:, :, 0::2, 0::2] + h[:, :, 1::2, 0::2] + h[:, :, 0::2, 1::2] + h[:, :, 1::2, 1::2])
    g = F.silu(gn(h, f"all_modules.{i}.")).mean(dim=(2, 3))
    logits = lin(g, f"all_modules.{i + 1}.")
    assert i + 2 == len(model.all_modules)
    _close(logits, ref["logits"], 1e-5)


# --------------------------------------------------------------------------------------
# FIR resampling borders (spec 7.5) and score_fn (spec 2)
# --------------------------------------------------------------------------------------

def _up_matrix(n):
    A = torch.zeros(2 * n, n, dtype=torch.float64)
    for i in range(n):
        A[2 * i, i] += 0.75
        if i >= 1:
            A[2 * i, i - 1] += 0.25
        A[2 * i + 1, i] += 0.75
        if i + 1 < n:
            A[2 * i + 1, i + 1] += 0.25
    return A


def _down_matrix(n):
    A = torch.zeros(n // 2, n, dtype=torch.float64)
    for i in range(n // 2):
        for j, w in zip((2 * i - 1, 2 * i, 2 * i + 1, 2 * i + 2), (1, 3, 3, 1)):
            if 0 <= j < n:
                A[i, j] += w / 8
    return A


def test_fir_upsample_borders():
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    y = nets.upsample_2d(x)
    assert y.shape == (2, 3, 10, 12)
    want = _up_matrix(5) @ x @ _up_matrix(6).T
    assert torch.allclose(y, want, atol=1e-12)
    r = torch.tensor([[[[1.0, 2.0, 4.0]]]], dtype=torch.float64)  # one row: vertical gives 3/4
    y = nets.upsample_2d(r)[0, 0, 0] / 0.75
    assert torch.allclose(y, torch.tensor([0.75, 1.25, 1.75, 2.5, 3.5, 3.0], dtype=torch.float64))
    assert y[0] == 0.75 * 1.0  # y[0] = 3/4 x[0]: no renormalisation at the border


def test_fir_downsample_borders():
    x = torch.randn(1, 2, 8, 6, dtype=torch.float64)
    y = nets.downsample_2d(x)
    assert y.shape == (1, 2, 4, 3)
    assert torch.allclose(y, _down_matrix(8) @ x @ _down_matrix(6).T, atol=1e-12)
    r = torch.tensor([[[[8.0, 16.0, 24.0, 32.0]]] * 2], dtype=torch.float64).reshape(1, 1, 2, 4)
    y = nets.downsample_2d(r)  # rows: (3*r0 + 3*r1)/8 = 6/8 of the row value
    assert torch.allclose(y[0, 0, 0], torch.tensor([(0 + 3 * 8 + 3 * 16 + 24) / 8,
                                                    (16 + 3 * 24 + 3 * 32 + 0) / 8],
                                                   dtype=torch.float64) * 0.75)


def test_fir_conv_downsample():
    n = 6
    x = torch.randn(1, 2, n, n, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    got = nets.conv_downsample_2d(x, w)
    B = torch.zeros(n + 1, n, dtype=torch.float64)  # b[m] = (x[m-2] + 3x[m-1] + 3x[m] + x[m+1])/8
    for m in range(n + 1):
        for j, c in zip((m - 2, m - 1, m, m + 1), (1, 3, 3, 1)):
            if 0 <= j < n:
                B[m, j] += c / 8
    bl = B @ x @ B.T
    want = torch.zeros(1, 3, n // 2, n // 2, dtype=torch.float64)
    for o in range(3):
        for i in range(n // 2):
            for j in range(n // 2):
                want[0, o, i, j] = (w[o] * bl[0, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]).sum()
    assert torch.allclose(got, want, atol=1e-12)


def test_naive_resampling():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(nets.naive_upsample_2d(x), F.interpolate(x, scale_factor=2, mode="nearest"))
    assert torch.equal(nets.naive_downsample_2d(x), F.avg_pool2d(x, 2))


class _Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = None

    def forward(self, x, label):
        self.seen = label
        return torch.ones_like(x) * 2.0


def test_score_fn_labels_and_scaling():
    x = torch.zeros(3, 1, 2, 2)
    t = torch.tensor([1e-3, 0.5, 1.0])
    m = _Recorder()
    ve = {"type": "ve", "sigma_min": 0.01, "sigma_max": 50.0, "N": 1000}
    s = nets.score_fn(m, {}, ve, x, t, continuous=True)
    assert torch.allclose(m.seen, 0.01 * 5000.0 ** t) and torch.equal(s, torch.full_like(x, 2.0))
    nets.score_fn(m, {}, ve, x, t, continuous=False)
    assert m.seen.dtype == torch.int64 and m.seen.tolist() == [998, 500, 0]
    vp = {"type": "vp", "beta_min": 0.1, "beta_max": 20.0, "N": 1000}
    s = nets.score_fn(m, {}, vp, x, t, continuous=True)
    assert torch.allclose(m.seen, t * 999)
    std = torch.tensor([0.0104854163, 0.959654202, 0.999978407])
    assert torch.allclose(s[:, 0, 0, 0], -2.0 / std, rtol=1e-3)  # float32 std, as torch
    s = nets.score_fn(m, {}, vp, x, t, continuous=False)
    assert torch.allclose(m.seen, t * 999)  # float, not rounded
    tab = nets.sqrt_1m_alphas_cumprod(vp)
    assert abs(tab[0].item() - 0.01) < 1e-6 and abs(tab[999].item() - 0.99997982) < 1e-6
    assert torch.allclose(s[:, 0, 0, 0], -2.0 / tab[(t * 999).long()])
    sub = {"type": "subvp", "beta_min": 0.1, "beta_max": 20.0, "N": 1000}
    s = nets.score_fn(m, {}, sub, x, t, continuous=False)  # sub-VP is always continuous
    assert torch.allclose(m.seen, t * 999)
    assert torch.allclose(s[:, 0, 0, 0], -2.0 / torch.tensor([0.000109943956, 0.920936188, 0.999956814]),
                          rtol=2e-3)


def test_positional_embedding_frequencies():
    e = nets.positional_embedding(torch.tensor([1.0]), 128)
    assert abs(math.asin(e[0, 1].item()) - 0.863988449) < 1e-6
    assert abs(e[0, 63].item() - math.sin(1e-4)) < 1e-9 and e[0, 64].item() == pytest.approx(math.cos(1.0))
