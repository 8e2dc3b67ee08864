#!/usr/bin/python3
"""PyTorch throughput on the four networks of tests/bench/bench_net.c, for comparison.

    /usr/bin/python3 tools/bench_torch.py [--c-results build/bench/bench_net.json] [--json out.json]
        [--min-time S] [--nets ddpmpp,ncsnpp,ddpm,skip] [--batches 1,8,32,64] [--threads 1,2]
    /usr/bin/python3 tools/bench_torch.py --c-results C.json --torch-results T.json   # compare only

The networks are built with tools/nets.py from NETS below, which holds exactly the configs
bench_net.c builds (its NETS table); --c-results files (written by `bench_net --json FILE`,
by default build/bench/bench_net.json) whose configs differ are refused.  Weights are random
by bench_net.c's rule (init_like_c), eval mode, no parameter gradients.  For each network, at
torch.set_num_threads(1) and (2) and batch 1, 8, 32, 64: the forward under torch.no_grad(), and
forward + VJP (torch.autograd.grad((out * v).sum(), x)), each the median of 3 timings that
repeat the call for at least --min-time seconds (default 1); `cpu` is CPU seconds per wall
second while timing (under 1 on one thread: the machine was busy); torch.mm 1024^3 is printed
before each block of rows as a reference for the machine's state.

FLOPs per sample are counted as bench_net.c counts them from its tape, here from the modules
(forward hooks at batch 1): Conv2d (and the FIR down-conv) 2*K*C*kh*kw*H'*W', NIN 2*C*O*P,
Linear 2*I*O, attention 4*C*P*P; elementwise work (GroupNorm, SiLU, FIR/naive resampling,
adds) is not counted.  fwd+VJP GFLOP/s counts the VJP as 2x the forward FLOPs, as the C
bench does.  With --c-results: a side-by-side table (C and PyTorch GFLOP/s, C's fraction of
its SGEMM rate, C/PyTorch), one comparison line per network, and the DDPM++ target check
(batch >= 32: C forward >= 0.60 x SGEMM 1024^3 and >= PyTorch).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nets  # noqa: E402

# Identical to NETS in tests/bench/bench_net.c (official field names; image_size,
# num_channels and centered ride along in the model dict, which nets.resolve_config accepts).
NETS = {
    "ddpmpp": ("DDPM++ (ncsnpp biggan, positional, no FIR, skip_rescale, centered; "
               "as tools/configs/fmnist_vp.json)", {
        "name": "ncsnpp", "nf": 32, "ch_mult": [1, 2, 2], "num_res_blocks": 2,
        "attn_resolutions": [7], "resamp_with_conv": True, "fir": False, "skip_rescale": True,
        "resblock_type": "biggan", "progressive": "none", "progressive_input": "none",
        "progressive_combine": "sum", "embedding_type": "positional", "conditional": True,
        "scale_by_sigma": False, "dropout": 0.0, "image_size": 28, "num_channels": 1,
        "centered": True}),
    "ncsnpp": ("NCSN++ (ncsnpp biggan, FIR, Fourier, progressive_input residual, scale_by_sigma)", {
        "name": "ncsnpp", "nf": 32, "ch_mult": [1, 2, 2], "num_res_blocks": 2,
        "attn_resolutions": [14], "resamp_with_conv": True, "fir": True, "skip_rescale": True,
        "resblock_type": "biggan", "progressive": "none", "progressive_input": "residual",
        "progressive_combine": "sum", "embedding_type": "fourier", "conditional": True,
        "scale_by_sigma": True, "dropout": 0.0, "image_size": 28, "num_channels": 1,
        "centered": False}),
    "ddpm": ("DDPM (ddpm, positional, 32 groups, attention at 16)", {
        "name": "ddpm", "nf": 32, "ch_mult": [1, 2, 2], "num_res_blocks": 2,
        "attn_resolutions": [16], "resamp_with_conv": True, "conditional": True,
        "scale_by_sigma": False, "dropout": 0.0, "image_size": 32, "num_channels": 3,
        "centered": True}),
    "skip": ("NCSN++ output_skip + input_skip (sum), FIR, Fourier, small", {
        "name": "ncsnpp", "nf": 16, "ch_mult": [1, 2, 2], "num_res_blocks": 2,
        "attn_resolutions": [16], "resamp_with_conv": True, "fir": True, "skip_rescale": True,
        "resblock_type": "biggan", "progressive": "output_skip",
        "progressive_input": "input_skip", "progressive_combine": "sum",
        "embedding_type": "fourier", "conditional": True, "scale_by_sigma": True,
        "dropout": 0.0, "image_size": 32, "num_channels": 3, "centered": False}),
}

KINDS = ("conv", "NIN", "dense", "attention")


def count_flops(model, x, t):
    """Forward FLOPs per sample by kind, from module hooks on a batch-1 forward."""
    flops = dict.fromkeys(KINDS, 0)

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.weight
            flops["conv"] += 2 * out[0].numel() * k.shape[1] * k.shape[2] * k.shape[3]
        elif isinstance(mod, nets._FIRConvDown):
            k = mod.weight
            flops["conv"] += 2 * out[0].numel() * k.shape[1] * k.shape[2] * k.shape[3]
        elif isinstance(mod, nets.NIN):
            P = out.shape[2] * out.shape[3]
            flops["NIN"] += 2 * mod.W.shape[0] * mod.W.shape[1] * P
        elif isinstance(mod, torch.nn.Linear):
            flops["dense"] += 2 * mod.in_features * mod.out_features
        elif isinstance(mod, nets.AttnBlockpp):
            C, P = out.shape[1], out.shape[2] * out.shape[3]
            flops["attention"] += 4 * C * P * P

    types = (torch.nn.Conv2d, torch.nn.Linear, nets.NIN, nets.AttnBlockpp, nets._FIRConvDown)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, types)]
    try:
        with torch.no_grad():
            model(x[:1], t[:1])
    finally:
        for h in handles:
            h.remove()
    return flops


def init_like_c(model, seed=20240611):
    """Random weights drawn by the rule bench_net.c's fetch_random uses (not the same values):
    conv, Linear and NIN W ~ normal(0, 1/sqrt(fan_in)); GroupNorm weight 1 + 0.1 normal; the
    Fourier W 16 normal; biases 0.1 normal.  (nets.py's own init zeroes biases and scales the
    last layer of each residual branch to ~1e-10; the timing should not depend on that.)"""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            z = torch.randn(p.shape, generator=g)
            if p.ndim == 4:
                p.copy_(z / (p.shape[1] * p.shape[2] * p.shape[3]) ** 0.5)
            elif p.ndim == 2:
                p.copy_(z / (p.shape[0] if name.endswith(".W") else p.shape[1]) ** 0.5)
            elif name.endswith("weight"):
                p.copy_(1.0 + 0.1 * z)
            elif name.endswith(".W"):
                p.copy_(16.0 * z)
            else:
                p.copy_(0.1 * z)


def make_inputs(arch, N, seed=11):
    """x (N,C,S,S) around 0 (centered) or 0.5, time_cond, probe v; like bench_net.c's."""
    g = torch.Generator().manual_seed(seed)
    C, S = arch["num_channels"], arch["image_size"]
    x = torch.randn(N, C, S, S, generator=g) * 0.5 + (0.0 if arch["centered"] else 0.5)
    v = torch.randn(N, C, S, S, generator=g)
    i = torch.arange(N, dtype=torch.float32)
    if arch["name"] == "ncsnpp" and arch["embedding_type"] == "fourier":
        t = 0.5 + 0.1 * (i % 4)           # sigma; the network takes ln sigma
    else:
        t = 500.0 + i                     # positional label
    return x, t, v


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def seconds_per_call(fn, min_time):
    """(median seconds per call of 3 trials of >= min_time each, CPU seconds per wall second)."""
    fn()  # warm-up
    trials = []
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(3):
        reps, t0 = 0, time.perf_counter()
        while True:
            fn()
            reps += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        trials.append(dt / reps)
    return statistics.median(trials), (time.process_time() - c0) / (time.perf_counter() - w0)


def mm_gflops(min_time, n=1024):
    """torch.mm float32 n^3: a reference for the machine's state beside the network rows."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    s, cpu = seconds_per_call(lambda: torch.mm(a, b), min_time)
    return 2.0 * n ** 3 / s / 1e9, cpu


def bench_net(key, arch, args):
    model = nets.build_model({"model": dict(arch)})
    init_like_c(model)
    model.eval()
    model.requires_grad_(False)
    params = sum(p.numel() for p in model.parameters())
    x1, t1, _ = make_inputs(arch, 1)
    fl = count_flops(model, x1, t1)
    fwd_flops = sum(fl.values())
    out = {"key": key, "arch": arch, "params": params, "flops_fwd": fwd_flops,
           "flops_by_kind": fl, "results": []}
    print(f"\n== {key}: {NETS[key][0]}, {arch['num_channels']}x{arch['image_size']}x{arch['image_size']}")
    print(f"   {params} parameters; forward {fwd_flops / 1e6:.1f} MFLOP/sample ("
          + ", ".join(f"{k} {100.0 * v / fwd_flops:.1f}%" for k, v in fl.items()) + ")")
    print(f"   load average at start: {loadavg()}")
    print(f"   {'thr':>3} {'batch':>5} | {'fwd ms/smp':>10} {'samples/s':>9} {'GFLOP/s':>8} {'cpu':>4} | "
          f"{'VJP ms/smp':>10} {'samples/s':>9} {'GFLOP/s':>8} {'cpu':>4}")
    for thr in args.threads:
        torch.set_num_threads(thr)
        mm, mm_cpu = mm_gflops(args.min_time)
        print(f"   {thr:3d}  torch.mm 1024^3 {mm:.1f} GFLOP/s (cpu {mm_cpu:.2f}), measured before these rows")
        for N in args.batches:
            x, t, v = make_inputs(arch, N)

            def fwd():
                with torch.no_grad():
                    model(x, t)

            def vjp():
                xg = x.detach().requires_grad_(True)
                with torch.enable_grad():
                    o = model(xg, t)
                    (g,) = torch.autograd.grad((o * v).sum(), xg)
                return g

            tf, cf = seconds_per_call(fwd, args.min_time)
            tb, cb = seconds_per_call(vjp, args.min_time)
            gf, gb = fwd_flops * N / tf / 1e9, 3 * fwd_flops * N / tb / 1e9
            out["results"].append({"threads": thr, "batch": N, "fwd_s": tf, "fwd_vjp_s": tb,
                                   "fwd_gflops": gf, "fwd_vjp_gflops": gb, "fwd_cpu_per_wall": cf,
                                   "fwd_vjp_cpu_per_wall": cb, "torch_mm_1024": mm})
            print(f"   {thr:3d} {N:5d} | {1e3 * tf / N:10.3f} {N / tf:9.1f} {gf:8.2f} {cf:4.2f} | "
                  f"{1e3 * tb / N:10.3f} {N / tb:9.1f} {gb:8.2f} {cb:4.2f}")
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"   peak RSS {out['peak_rss_mib']:.1f} MiB (process peak so far)")
    return out


def compare(c, torch_nets, args):
    """Side-by-side table and one comparison line per network."""
    c_nets = {n["key"]: n for n in c["nets"]}
    print("\n== C (bench_net) vs PyTorch, GFLOP/s (same FLOP counts; fwd+VJP counts the VJP as 2x fwd)")
    print("   /sgemm: C's fraction of cblas_sgemm 1024^3 at the same thread count, measured by bench_net "
          "just before each block of rows;\n   ! after a figure: the process got under 0.9 CPU-seconds per "
          "second on 1 thread (the machine was busy)")
    verdicts = []
    for tn in torch_nets:
        key = tn["key"]
        cn = c_nets.get(key)
        if cn is None:
            continue
        if abs(cn["flops_fwd"] - tn["flops_fwd"]) > 1e-6 * tn["flops_fwd"]:
            print(f"   warning: {key}: FLOP counts differ (C {cn['flops_fwd']:.0f}, "
                  f"PyTorch {tn['flops_fwd']:.0f})")
        cres = {(r["threads"], r["batch"]): r for r in cn["results"]}
        print(f"\n   {key} ({tn['params']} parameters, {tn['flops_fwd'] / 1e6:.1f} MFLOP/sample)")
        print(f"   {'mode':>7} {'batch':>5} | {'C 1thr':>7} {'/sgemm':>6} {'C 2thr':>7} {'/sgemm':>6} | "
              f"{'Pt 1thr':>7}  {'Pt 2thr':>7} | {'C/Pt 1':>6} {'C/Pt 2':>6}")
        ratios = {"fwd": [], "fwd_vjp": []}
        for mode in ("fwd", "fwd_vjp"):
            for N in args.batches:
                row = [f"   {mode:>7} {N:5d} |"]
                cg, pg = {}, {}
                for thr in (1, 2):
                    r = cres.get((thr, N))
                    cg[thr] = r[f"{mode}_gflops"] if r else None
                    if r and r.get("sgemm_1024"):
                        row.append(f" {cg[thr]:7.2f}{busy(r, mode, thr)}{cg[thr] / r['sgemm_1024']:6.2f}")
                    else:
                        row.append(f" {'-':>7} {'-':>6}")
                row.append(" |")
                for thr in (1, 2):
                    p = [q for q in tn["results"] if q["threads"] == thr and q["batch"] == N]
                    pg[thr] = p[0][f"{mode}_gflops"] if p else None
                    row.append(f" {pg[thr]:7.2f}{busy(p[0], mode, thr)}" if p else f" {'-':>7} ")
                row.append("|")
                for thr in (1, 2):
                    if cg[thr] and pg[thr]:
                        ratios[mode].append((thr, N, cg[thr] / pg[thr]))
                        row.append(f" {cg[thr] / pg[thr]:6.2f}")
                    else:
                        row.append(f" {'-':>6}")
                print("".join(row))
        parts = []
        for mode, rs in ratios.items():
            if rs:
                lo, hi = min(r[2] for r in rs), max(r[2] for r in rs)
                big = [r[2] for r in rs if r[1] >= 32]
                parts.append(f"{mode} C/PyTorch {lo:.2f}..{hi:.2f}"
                             + (f" (batch >= 32: {min(big):.2f}..{max(big):.2f})" if big else ""))
        print(f"   {key}: " + "; ".join(parts))
        if key == "ddpmpp":
            verdicts.append(target_check(cn, tn))
    for v in verdicts:
        print(v)


def busy(r, mode, thr):
    """'!' when a 1-thread timing did not have its core (CPU/wall < 0.9), else ' '."""
    cpu = r.get(f"{mode}_cpu_per_wall")
    return "!" if thr == 1 and cpu is not None and cpu < 0.9 else " "


def target_check(cn, tn):
    """The target: DDPM++ at batch >= 32, C forward >= 60% of SGEMM and >= PyTorch."""
    lines = ["\n   target (DDPM++, batch >= 32: C fwd >= 0.60 x sgemm 1024^3 and C >= PyTorch):"]
    for r in cn["results"]:
        if r["batch"] < 32:
            continue
        s = r["sgemm_1024"]
        p = [q for q in tn["results"] if q["threads"] == r["threads"] and q["batch"] == r["batch"]]
        frac = r["fwd_gflops"] / s
        ok1 = frac >= 0.60
        msg = f"     {r['threads']} thr batch {r['batch']:2d}: fwd {frac:.2f} x sgemm {'ok' if ok1 else 'MISSED'}"
        if p:
            rf = r["fwd_gflops"] / p[0]["fwd_gflops"]
            rb = r["fwd_vjp_gflops"] / p[0]["fwd_vjp_gflops"]
            msg += (f"; vs PyTorch fwd {rf:.2f}x {'ok' if rf >= 1 else 'MISSED'}, "
                    f"fwd+VJP {rb:.2f}x {'ok' if rb >= 1 else 'MISSED'}")
        lines.append(msg)
    if len(lines) == 1:
        lines.append("     (no batch >= 32 was measured)")
    return "\n".join(lines)


def int_list(s):
    return [int(v) for v in s.split(",") if v]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--c-results", action="append",
                    help="JSON written by bench_net --json FILE (repeatable: the networks are merged)")
    ap.add_argument("--json", help="write PyTorch results here")
    ap.add_argument("--torch-results", action="append",
                    help="compare these saved PyTorch results (--json files) instead of measuring")
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--batches", type=int_list, default=[1, 8, 32, 64])
    ap.add_argument("--threads", type=int_list, default=[1, 2])
    args = ap.parse_args(argv)
    keys = [k for k in args.nets.split(",") if k]
    for k in keys:
        if k not in NETS:
            ap.error(f"unknown network {k!r} (have {', '.join(NETS)})")
    c = None
    if args.c_results:
        c = {"nets": []}
        for path in args.c_results:
            with open(path) as f:
                c["nets"] += json.load(f)["nets"]
        for n in c["nets"]:
            if n["key"] in NETS and n["arch"] != NETS[n["key"]][1]:
                print(f"bench_torch: {n['key']}: bench_net.c's config differs from NETS here:\n"
                      f"  C:     {json.dumps(n['arch'], sort_keys=True)}\n"
                      f"  torch: {json.dumps(NETS[n['key']][1], sort_keys=True)}", file=sys.stderr)
                return 1
    torch.manual_seed(0)
    print(f"bench_torch: PyTorch {torch.__version__}, mkldnn {torch.backends.mkldnn.is_available()}; "
          f"median of 3 timings of >= {args.min_time:g} s; fwd+VJP counts the VJP as 2x forward FLOPs")
    if args.torch_results:
        results = []
        for path in args.torch_results:
            with open(path) as f:
                results += [n for n in json.load(f)["nets"] if n["key"] in keys]
        batches = sorted({r["batch"] for n in results for r in n["results"]})
        args.batches = [b for b in args.batches if b in batches] or batches
    else:
        results = [bench_net(k, NETS[k][1], args) for k in keys]
    if args.json and not args.torch_results:
        with open(args.json, "w") as f:
            json.dump({"bench": "bench_torch", "torch": torch.__version__, "min_time_s": args.min_time,
                       "nets": results}, f, indent=1)
        print(f"\nwrote {args.json}")
    if c is not None:
        compare(c, results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
