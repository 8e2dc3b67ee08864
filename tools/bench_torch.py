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
repeat the call for at least --min-time seconds (default 1); then, as the server uses two
cores, --workers (default 2) Python threads at once, each torch 1 thread, their samples/s
summed ("2x1").  The OpenBLAS inside PyTorch (torch.mm, einsum) is set to the same thread
count as torch (set_threads).  `cpu` is CPU seconds per wall
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
import ctypes
import json
import os
import resource
import statistics
import sys
import threading
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


def _loaded_openblas():
    """The OpenBLAS this process loaded (Debian's torch does its matmuls -- torch.mm, einsum/bmm
    in NIN and attention -- through libblas.so.3, which is OpenBLAS here), or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_set_num_threads.argtypes = [ctypes.c_int]
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return lib
        except (OSError, AttributeError):
            continue
    return None


OPENBLAS = _loaded_openblas()


def set_threads(n):
    """torch.set_num_threads(n), and the same for the OpenBLAS inside torch, which
    torch.set_num_threads leaves alone (it would otherwise use both cores on "1 thread")."""
    torch.set_num_threads(n)
    if OPENBLAS is not None:
        OPENBLAS.openblas_set_num_threads(n)


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


def net_calls(model, arch, N):
    """(forward, forward + VJP) closures on a batch of N of their own inputs."""
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

    return fwd, vjp


def workers_rate(calls, N, min_time):
    """Samples/s of len(calls) threads calling at once (the server's one chunk per core):
    median of 3 trials of >= min_time after a warm-up, each thread's rate summed; and CPU
    seconds per wall second.  PyTorch releases the GIL inside its kernels."""
    rates = []
    c0, w0 = time.process_time(), time.perf_counter()
    for trial in range(4):
        deadline = time.perf_counter() + (min_time if trial else 0)
        res = [None] * len(calls)

        def work(i):
            t0, k = time.perf_counter(), 0
            while True:
                calls[i]()
                k += 1
                if time.perf_counter() >= deadline:
                    break
            res[i] = k * N / (time.perf_counter() - t0)

        ths = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        if trial:
            rates.append(sum(res))
    return statistics.median(rates), (time.process_time() - c0) / (time.perf_counter() - w0)


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
        set_threads(thr)
        mm, mm_cpu = mm_gflops(args.min_time)
        print(f"   {thr:3d}  torch.mm 1024^3 {mm:.1f} GFLOP/s (cpu {mm_cpu:.2f}), measured before these rows")
        for N in args.batches:
            fwd, vjp = net_calls(model, arch, N)
            tf, cf = seconds_per_call(fwd, args.min_time)
            tb, cb = seconds_per_call(vjp, args.min_time)
            gf, gb = fwd_flops * N / tf / 1e9, 3 * fwd_flops * N / tb / 1e9
            out["results"].append({"threads": thr, "batch": N, "fwd_s": tf, "fwd_vjp_s": tb,
                                   "fwd_gflops": gf, "fwd_vjp_gflops": gb, "fwd_cpu_per_wall": cf,
                                   "fwd_vjp_cpu_per_wall": cb, "torch_mm_1024": mm})
            print(f"   {thr:3d} {N:5d} | {1e3 * tf / N:10.3f} {N / tf:9.1f} {gf:8.2f} {cf:4.2f} | "
                  f"{1e3 * tb / N:10.3f} {N / tb:9.1f} {gb:8.2f} {cb:4.2f}")
    W = args.workers
    if W > 1:
        set_threads(1)
        for N in args.batches:
            row = {"threads": 1, "workers": W, "batch": N}
            for mode, i in (("fwd", 0), ("fwd_vjp", 1)):
                calls = [net_calls(model, arch, N)[i] for _ in range(W)]
                sps, cpu = workers_rate(calls, N, args.min_time)
                row[f"{mode}_s"] = N / sps
                row[f"{mode}_gflops"] = (1 if i == 0 else 3) * fwd_flops * sps / 1e9
                row[f"{mode}_cpu_per_wall"] = cpu
            out["results"].append(row)
            print(f"   {W}x1 {N:5d} | {1e3 * row['fwd_s'] / N:10.3f} {N / row['fwd_s']:9.1f} "
                  f"{row['fwd_gflops']:8.2f} {row['fwd_cpu_per_wall']:4.2f} | "
                  f"{1e3 * row['fwd_vjp_s'] / N:10.3f} {N / row['fwd_vjp_s']:9.1f} "
                  f"{row['fwd_vjp_gflops']:8.2f} {row['fwd_vjp_cpu_per_wall']:4.2f}")
        print(f"   ({W}x1: {W} Python threads each running whole batches, torch.set_num_threads(1); "
              "ms/smp is wall time per sample of all of them together)")
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"   peak RSS {out['peak_rss_mib']:.1f} MiB (process peak so far)")
    return out


CONFIGS = (("1thr", 1, 1), ("2thr", 2, 1), ("2x1", 1, 2))  # (column, threads, workers)


def by_config(results):
    """{(column, batch): row} for the configurations in CONFIGS."""
    out = {}
    for r in results:
        for name, thr, w in CONFIGS:
            if r["threads"] == thr and r.get("workers", 1) == w:
                out[(name, r["batch"])] = r
    return out


def compare(c, torch_nets, args):
    """Side-by-side table, one comparison line per network, and the DDPM++ target check."""
    c_nets = {n["key"]: n for n in c["nets"]}
    print("\n== C (bench_net) vs PyTorch, GFLOP/s (same FLOP counts; fwd+VJP counts the VJP as 2x fwd)\n"
          "   1thr, 2thr: one evaluation at a time on 1 or 2 threads; 2x1: two at once on 1 thread each "
          "(the server's way);\n   /sg: C over cblas_sgemm 1024^3 on as many threads, measured by "
          "bench_net before its rows;\n   C/Pt 2c: the better C 2-core figure over the better PyTorch one; "
          "! after a figure: a 1-thread timing\n   got under 0.9 CPU-seconds per second (the machine "
          "was busy)")
    verdicts = []
    for tn in torch_nets:
        key = tn["key"]
        cn = c_nets.get(key)
        if cn is None:
            continue
        if abs(cn["flops_fwd"] - tn["flops_fwd"]) > 1e-6 * tn["flops_fwd"]:
            print(f"   warning: {key}: FLOP counts differ (C {cn['flops_fwd']:.0f}, "
                  f"PyTorch {tn['flops_fwd']:.0f})")
        cres, pres = by_config(cn["results"]), by_config(tn["results"])
        print(f"\n   {key} ({tn['params']} parameters, {tn['flops_fwd'] / 1e6:.1f} MFLOP/sample)")
        print(f"   {'mode':>7} {'batch':>5} |" + "".join(f" {'C ' + n:>7} {'/sg':>5}" for n, _, _ in CONFIGS)
              + " |" + "".join(f" {'Pt ' + n:>8}" for n, _, _ in CONFIGS) + f" | {'C/Pt 1':>6} {'C/Pt 2c':>7}")
        ratios = {"fwd": [], "fwd_vjp": []}
        for mode in ("fwd", "fwd_vjp"):
            for N in args.batches:
                row = [f"   {mode:>7} {N:5d} |"]
                cg, pg = {}, {}
                for name, thr, _ in CONFIGS:
                    r = cres.get((name, N))
                    cg[name] = r[f"{mode}_gflops"] if r else None
                    if r and r.get("sgemm_1024"):
                        row.append(f" {cg[name]:7.2f}{busy(r, mode, thr)}{cg[name] / r['sgemm_1024']:4.2f}")
                    elif r:
                        row.append(f" {cg[name]:7.2f}{busy(r, mode, thr)}{'-':>4}")
                    else:
                        row.append(f" {'-':>7} {'-':>4}")
                row.append(" |")
                for name, thr, _ in CONFIGS:
                    p = pres.get((name, N))
                    pg[name] = p[f"{mode}_gflops"] if p else None
                    row.append(f" {pg[name]:7.2f}{busy(p, mode, thr)}" if p else f" {'-':>7} ")
                row.append("|")
                one = cg["1thr"] / pg["1thr"] if cg["1thr"] and pg["1thr"] else None
                c2 = max([v for k, v in cg.items() if k != "1thr" and v] or [0])
                p2 = max([v for k, v in pg.items() if k != "1thr" and v] or [0])
                two = c2 / p2 if c2 and p2 else None
                row.append(f" {one:6.2f}" if one else f" {'-':>6}")
                row.append(f" {two:7.2f}" if two else f" {'-':>7}")
                ratios[mode] += [(N, x) for x in (one, two) if x]
                print("".join(row))
        parts = []
        for mode, rs in ratios.items():
            if rs:
                lo, hi = min(r[1] for r in rs), max(r[1] for r in rs)
                big = [r[1] for r in rs if r[0] >= 32]
                parts.append(f"{mode} C/PyTorch {lo:.2f}..{hi:.2f}"
                             + (f" (batch >= 32: {min(big):.2f}..{max(big):.2f})" if big else ""))
        print(f"   {key}: " + "; ".join(parts))
        if key == "ddpmpp":
            verdicts.append(target_check(cres, pres))
    for v in verdicts:
        print(v)


def busy(r, mode, thr):
    """'!' when a 1-thread timing did not have its core (CPU/wall < 0.9), else ' '."""
    cpu = r.get(f"{mode}_cpu_per_wall")
    return "!" if thr == 1 and cpu is not None and cpu < 0.9 else " "


def target_check(cres, pres):
    """The target: DDPM++ at batch >= 32, C forward >= 60% of SGEMM and >= PyTorch (the same
    configuration; for 2 cores, C's better one against PyTorch's better one)."""
    lines = ["\n   target (DDPM++, batch >= 32: C fwd >= 0.60 x sgemm 1024^3 on as many threads, "
             "and C >= PyTorch):"]
    batches = sorted({b for (_, b) in cres if b >= 32})
    for N in batches:
        for name, _, _ in CONFIGS:
            r = cres.get((name, N))
            if not r:
                continue
            msg = f"     {name:>4} batch {N:2d}:"
            if r.get("sgemm_1024"):
                frac = r["fwd_gflops"] / r["sgemm_1024"]
                msg += f" fwd {frac:.2f} x sgemm {'ok' if frac >= 0.60 else 'MISSED'};"
            p = pres.get((name, N))
            if p:
                rf = r["fwd_gflops"] / p["fwd_gflops"]
                rb = r["fwd_vjp_gflops"] / p["fwd_vjp_gflops"]
                msg += (f" vs PyTorch {name} fwd {rf:.2f}x {'ok' if rf >= 1 else 'MISSED'}, "
                        f"fwd+VJP {rb:.2f}x {'ok' if rb >= 1 else 'MISSED'}")
            lines.append(msg)
    if len(lines) == 1:
        lines.append("     (no batch >= 32 was measured)")
    return "\n".join(lines)


def merge_nets(paths, keys):
    """The "nets" of several results files; one network's rows from several files are joined
    (a later file's row replaces an earlier one for the same threads, workers and batch)."""
    merged = {}
    for path in paths:
        with open(path) as f:
            for n in json.load(f)["nets"]:
                if n["key"] not in keys:
                    continue
                old = merged.setdefault(n["key"], dict(n, results=[]))
                rows = {(r["threads"], r.get("workers", 1), r["batch"]): r for r in old["results"]}
                rows.update({(r["threads"], r.get("workers", 1), r["batch"]): r for r in n["results"]})
                old["results"] = list(rows.values())
    return list(merged.values())


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
    ap.add_argument("--workers", type=int, default=2,
                    help="also this many threads at once, each torch 1 thread (0: off)")
    args = ap.parse_args(argv)
    keys = [k for k in args.nets.split(",") if k]
    for k in keys:
        if k not in NETS:
            ap.error(f"unknown network {k!r} (have {', '.join(NETS)})")
    c = None
    if args.c_results:
        c = {"nets": merge_nets(args.c_results, keys)}
        for n in c["nets"]:
            if n["key"] in NETS and n["arch"] != NETS[n["key"]][1]:
                print(f"bench_torch: {n['key']}: bench_net.c's config differs from NETS here:\n"
                      f"  C:     {json.dumps(n['arch'], sort_keys=True)}\n"
                      f"  torch: {json.dumps(NETS[n['key']][1], sort_keys=True)}", file=sys.stderr)
                return 1
    torch.manual_seed(0)
    blas = f"OpenBLAS {OPENBLAS.openblas_get_corename().decode()}" if OPENBLAS is not None else "no OpenBLAS"
    print(f"bench_torch: PyTorch {torch.__version__}, mkldnn {torch.backends.mkldnn.is_available()}, {blas}; "
          f"median of 3 timings of >= {args.min_time:g} s; fwd+VJP counts the VJP as 2x forward FLOPs")
    if args.torch_results:
        results = merge_nets(args.torch_results, keys)
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
