#!/usr/bin/python3
"""Strong and weak scaling of tessera on the reference MLP, and an alpha-beta cost model.

Run through scripts/scaling.sh. Measures, for N in --ranks (ranks x 1 thread each):
  strong: global batch 256 whatever N;   weak: 128 rows per rank (global batch 128 N).
Figures are medians over the log intervals after step 20 (samples_per_s, compute_s, data_wait_s,
comm_wait_min_s: the exposed communication, and comm_wait_s, which adds the wait for slower
ranks, from metrics.jsonl); --steps is at least 40. Each run writes one checkpoint, after its
last step. Parallel efficiency: strong E = t(1) / (N t(N)) in step time; weak E = t(1) / t(N).
For weak scaling it also runs N independent 1-rank trainings side by side (one per core, no
communication): their step time (alone_step_ms) is what sharing the machine's memory bandwidth,
caches and clocks costs by itself, so the gap between that and the measured step is
communication. --layouts "16x1 4x4 1x16" compares ranks x threads splits of the
same cores at global batch 256 (layouts.csv).

The cost model (assumptions, also in README "Scaling"):
  * Compute scales perfectly: t_compute(N) = c * rows per rank, with c (seconds per row) taken
    from the strong N = 1 run (it includes reading the rows from HDF5).
  * Communication is fully exposed (no credit for overlap): conservative where backward hides
    part of it.
  * Gradients go in tessera's pieces (distributed.bucket_mb = 0.5: blocks of 256 weight-gradient
    rows, last layer first) and messages of at most 4 MiB. A piece of b bytes >= 64 KiB is a ring allreduce:
    2 (N-1) alpha + 2 (N-1)/N b beta; smaller messages and the per-step stats reduction take
    ceil(log2 N) (alpha_small + b beta) (recursive doubling).
  * alpha, beta from build/bench/collective_bench at N = 2 on this machine (shared memory):
    BM_TesseraAllreduce at 256 KiB and 4 MiB give 2 alpha + b beta at two sizes (alpha at least
    half the 8-byte time); alpha_small is its 8-byte time. Across nodes, alpha and beta come from the network instead: pass
    --alpha/--beta to predict another machine.
  * Strong scaling stops at N = 256 (one row per rank).
"""
import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import tempfile

SIZES = [784, 1024, 1024, 10]
RING_MIN = 64 << 10
PIECE = 4 << 20


def pieces(bucket_mb=0.5, tile_rows=256):
    """Bytes of every message one step's gradient reduction sends, in tessera's order: blocks of
    tile_rows weight-gradient rows (the bias with the last), last layer first, joined within a
    layer (or with an adjacent one-block layer) until a piece holds bucket_mb MiB (GradReducer)."""
    units = []  # (offset, bytes) in the order backward finishes them
    offsets = [0]
    for l in range(len(SIZES) - 1):
        offsets.append(offsets[-1] + 4 * (SIZES[l + 1] * SIZES[l] + SIZES[l + 1]))
    for l in reversed(range(len(SIZES) - 1)):
        fin, fout = SIZES[l], SIZES[l + 1]
        for r in range(0, fout, tile_rows):
            rows = min(tile_rows, fout - r)
            units.append((offsets[l] + 4 * r * fin, 4 * (rows * fin + (fout if r + rows == fout else 0))))
    merged, i = [], 0
    while i < len(units):
        start, size = units[i]
        i += 1
        while i < len(units) and size < bucket_mb * (1 << 20):
            o, b = units[i]
            if o != start + size and o + b != start:
                break
            start, size = min(start, o), size + b
            i += 1
        merged.append(size)
    out = []
    for b in merged:
        while b > 0:
            out.append(min(b, PIECE))
            b -= PIECE
    return out


def comm_time(n, alpha, beta, alpha_small):
    if n == 1:
        return 0.0
    t = 0.0
    steps = math.ceil(math.log2(n))
    for b in pieces():
        t += 2 * (n - 1) * alpha + 2 * (n - 1) / n * b * beta if b >= RING_MIN else steps * (alpha_small + b * beta)
    return t + steps * (alpha_small + 40 * beta)  # the stats reduction: 5 doubles


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def predict(n, rows_per_rank, c, alpha, beta, alpha_small):
    return c * rows_per_rank + comm_time(n, alpha, beta, alpha_small)


def calibrate(build):
    out = subprocess.run(["mpirun", "-np", "2", os.path.join(build, "bench", "collective_bench"),
                          "--benchmark_filter=BM_TesseraAllreduce/(8|262144|4194304)/", "--benchmark_format=json"],
                         check=True, capture_output=True, text=True).stdout
    runs = {int(b["name"].split("/")[1]): b["real_time"] * 1e-6 for b in json.loads(out)["benchmarks"]}
    n1, n2 = 262144, 4194304
    beta = (runs[n2] - runs[n1]) / (n2 - n1)
    # A fit on a noisy machine can put the intercept near or below zero: a ring step costs at
    # least one point-to-point latency, about half the 8-byte allreduce.
    alpha = max((runs[n1] - n1 * beta) / 2, runs[8] / 2)
    return alpha, beta, runs[8]


def interval_medians(out, batch):
    """Step time and its parts (seconds per step), medians over the log intervals after step 20."""
    lines = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    train = [o for o in lines if o["event"] == "train"]
    # Steps in each interval: log_every, except a shorter last one when steps is not a multiple.
    span = {o["step"]: o["step"] - p["step"] for p, o in zip(train, train[1:])}
    train = [o for o in train if o["step"] > 20 and o["step"] in span]
    if not train:
        raise SystemExit(f"scaling.py: {out} logged no interval after step 20: raise --steps")
    per_step = lambda key: statistics.median(o.get(key, 0.0) / span[o["step"]] for o in train)
    return {"step": statistics.median(batch / o["samples_per_s"] for o in train),
            "compute": per_step("compute_s"), "data_wait": per_step("data_wait_s"), "comm": per_step("comm_wait_min_s"),
            "comm_wait": per_step("comm_wait_s")}


def train_cmd(tessera, config, out, batch, steps, threads):
    # One checkpoint, after the last step. At the default (one per epoch) the data file's epochs
    # are 12 steps long for weak N = 16 (global batch 2048) but 96 to 192 for N = 1, so a
    # checkpoint would fall into nearly every log interval of the one and few of the other, and
    # its cost would pass for a cost of scaling.
    return [tessera, "train", config, "--quiet", "--set", f"train.threads={threads}",
            "--set", f"train.batch_size={batch}", "--set", f"train.max_steps={steps}", "--set", f"checkpoint.dir={out}",
            "--set", f"checkpoint.every_steps={steps}"]


def measure(tessera, n, batch, steps, config, work, cores, threads=1):
    out = os.path.join(work, f"run-{n}x{threads}-{batch}")
    cmd = ["mpirun", "--oversubscribe", "-np", str(n)] + train_cmd(tessera, config, out, batch, steps, threads)
    if n * threads <= cores:
        # Each rank gets its own cores (threads of one rank share a socket's cores, not another rank's).
        cmd[1:1] = ["--bind-to", "core", "--map-by", f"slot:PE={threads}"] if threads > 1 else ["--bind-to", "core"]
    subprocess.run(cmd, check=True, capture_output=True)
    return interval_medians(out, batch)


def measure_alone(tessera, n, batch, steps, config, work, cores):
    """n independent 1-rank runs at once, one per core, no communication: what sharing the
    machine's memory system, caches and clocks alone does to the step (weak scaling's floor)."""
    procs = []
    for i in range(n):
        out = os.path.join(work, f"alone-{n}-{i}")
        cmd = ["mpirun", "--bind-to", "none", "-np", "1"] + train_cmd(tessera, config, out, batch, steps, 1)
        # Pinned to logical CPU i before exec, and inherited by the rank (no taskset: the lent
        # 16-core machines need not have util-linux; mpirun's --cpu-set counts cores, not CPUs).
        pin = (lambda cpu=sorted(os.sched_getaffinity(0))[i]: os.sched_setaffinity(0, {cpu})) if n <= cores else None
        procs.append((out, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=pin)))
    for out, p in procs:
        if p.wait() != 0:
            raise SystemExit(f"scaling.py: a 1-rank run beside {n - 1} others failed: {p.stderr.read().decode()[-500:]}")
    return statistics.median(interval_medians(out, batch)["step"] for out, _ in procs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--ranks", default="1 2 4")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "results"))
    ap.add_argument("--extrapolate", default="1 2 4 8 16 32 64 128 256 512 1024 2048 4096")
    ap.add_argument("--alpha", type=float, help="ring step latency, s (default: measured)")
    ap.add_argument("--beta", type=float, help="seconds per byte (default: measured)")
    ap.add_argument("--layouts", default="", help='ranks x threads layouts at global batch 256, e.g. "16x1 8x2 1x16"')
    a = ap.parse_args()
    if a.steps < 40:
        ap.error("--steps must be at least 40: the figures are medians over the 10-step intervals after step 20")
    ranks = [int(x) for x in a.ranks.split()]
    cores = len(os.sched_getaffinity(0))  # the CPUs this process may use, cpusets counted
    tessera = os.path.join(a.build, "tessera")
    os.makedirs(a.out, exist_ok=True)
    alpha, beta, alpha_small = calibrate(a.build)
    alpha = a.alpha if a.alpha is not None else alpha
    beta = a.beta if a.beta is not None else beta
    print(f"calibration (collective_bench, N = 2): alpha {alpha * 1e6:.1f} us, beta {beta * 1e9:.3f} ns/B "
          f"({1 / beta / 1e9:.2f} GB/s), small-message latency {alpha_small * 1e6:.1f} us")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "mlp.h5")
        subprocess.run([tessera, "data", "synth", "--out", data, "--rows", str(128 * max(ranks) * 12),
                        "--features", "784", "--classes", "10", "--seed", "3"], check=True, capture_output=True)
        config = os.path.join(work, "mlp.toml")
        with open(config, "w") as f:
            f.write('[data]\ntrain = "mlp.h5"\n[model]\nkind = "mlp"\nhidden = [1024, 1024]\n'
                    '[optimizer]\nkind = "sgd"\nlr = 0.01\nmomentum = 0.9\n[train]\nepochs = 1000\nlog_every = 10\n')
        base = {}
        for mode in ("strong", "weak"):
            for n in ranks:
                batch = 256 if mode == "strong" else 128 * n
                m = measure(tessera, n, batch, a.steps, config, work, cores)
                step = m["step"]
                if n == 1:
                    base[mode] = step
                # Weak scaling's floor without communication: n single-rank runs side by side.
                alone = measure_alone(tessera, n, 128, a.steps, config, work, cores) if mode == "weak" and n > 1 else \
                    (step if mode == "weak" else float("nan"))
                rows.append({"mode": mode, "ranks": n, "global_batch": batch, "oversubscribed": int(n > cores),
                             "step_ms": step * 1e3, "samples_per_s": batch / step, "compute_ms": m["compute"] * 1e3,
                             "data_wait_ms": m["data_wait"] * 1e3, "exposed_comm_ms": m["comm"] * 1e3,
                             "comm_wait_ms": m["comm_wait"] * 1e3, "alone_step_ms": alone * 1e3})
                print(f"{mode:>6} N={n}: step {step * 1e3:.2f} ms, {batch / step:,.0f} samples/s, compute {m['compute'] * 1e3:.2f} ms, "
                      f"exposed comm {m['comm'] * 1e3:.2f} ms, comm wait {m['comm_wait'] * 1e3:.2f} ms"
                      f"{f', {n} independent 1-rank runs side by side: {alone * 1e3:.2f} ms' if mode == 'weak' and n > 1 else ''}"
                      f"{' (oversubscribed: ' + str(n) + ' ranks on ' + str(cores) + ' cores)' if n > cores else ''}")
        layouts = []
        for spec in a.layouts.split():
            n, threads = (int(x) for x in spec.split("x"))
            m = measure(tessera, n, 256, a.steps, config, work, cores, threads)
            step = m["step"]
            layouts.append({"ranks": n, "threads": threads, "global_batch": 256, "oversubscribed": int(n * threads > cores),
                            "step_ms": f"{step * 1e3:.4g}", "samples_per_s": f"{256 / step:.5g}",
                            "compute_ms": f"{m['compute'] * 1e3:.4g}", "exposed_comm_ms": f"{m['comm'] * 1e3:.4g}",
                            "comm_wait_ms": f"{m['comm_wait'] * 1e3:.4g}"})
            print(f"layout {n} ranks x {threads} threads: step {step * 1e3:.2f} ms, {256 / step:,.0f} samples/s, "
                  f"compute {m['compute'] * 1e3:.2f} ms, exposed comm {m['comm'] * 1e3:.2f} ms, comm wait {m['comm_wait'] * 1e3:.2f} ms")
        if layouts:
            with open(os.path.join(a.out, "layouts.csv"), "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(layouts[0].keys()))
                w.writeheader()
                w.writerows(layouts)
    c = base["strong"] / 256
    for r in rows:
        n, mode = r["ranks"], r["mode"]
        t1 = base[mode]
        r["efficiency"] = t1 / (n * r["step_ms"] * 1e-3) if mode == "strong" else t1 / (r["step_ms"] * 1e-3)
        per_rank = math.ceil(r["global_batch"] / n)
        p = predict(n, per_rank, c, alpha, beta, alpha_small)
        p1 = predict(1, r["global_batch"] if mode == "strong" else 128, c, alpha, beta, alpha_small)
        r["model_step_ms"] = p * 1e3
        r["model_efficiency"] = p1 / (n * p) if mode == "strong" else p1 / p
        # What weak efficiency would be with free communication: the machine's own limit.
        r["alone_efficiency"] = t1 / (r["alone_step_ms"] * 1e-3) if mode == "weak" else float("nan")
    with open(os.path.join(a.out, "scaling.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()})
    model = []
    for n in [int(x) for x in a.extrapolate.split()]:
        for mode in ("strong", "weak"):
            if mode == "strong" and n > 256:
                continue
            per_rank = math.ceil(256 / n) if mode == "strong" else 128
            p = predict(n, per_rank, c, alpha, beta, alpha_small)
            p1 = predict(1, 256 if mode == "strong" else 128, c, alpha, beta, alpha_small)
            eff = p1 / (n * p) if mode == "strong" else p1 / p
            model.append({"mode": mode, "ranks": n, "step_ms": f"{p * 1e3:.4g}",
                          "comm_ms": f"{comm_time(n, alpha, beta, alpha_small) * 1e3:.4g}", "efficiency": f"{eff:.4g}"})
    with open(os.path.join(a.out, "scaling_model.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(model[0].keys()))
        w.writeheader()
        w.writerows(model)
        f.write(f"# alpha {alpha:.4g} s, beta {beta:.4g} s/B, alpha_small {alpha_small:.4g} s, compute {c:.4g} s/row\n")
        f.write(f"# measured on {cores} cores: {cpu_model()}\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode, color in (("strong", "tab:blue"), ("weak", "tab:orange")):
        ms = [m for m in model if m["mode"] == mode]
        ax.plot([m["ranks"] for m in ms], [float(m["efficiency"]) for m in ms], "--", color=color, label=f"{mode}: model")
        rs = [r for r in rows if r["mode"] == mode]
        ax.plot([r["ranks"] for r in rs], [r["efficiency"] for r in rs], "o-", color=color, label=f"{mode}: measured")
        if mode == "weak" and len(rs) > 1:
            ax.plot([r["ranks"] for r in rs], [r["alone_efficiency"] for r in rs], ":", color=color,
                    label="weak: N 1-rank runs side by side (no communication)")
        for r in rs:
            if r["oversubscribed"]:
                ax.annotate("oversubscribed", (r["ranks"], r["efficiency"]), fontsize=7, textcoords="offset points", xytext=(4, -10))
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("ranks N (1 thread each)")
    ax.set_ylabel("parallel efficiency")
    ax.set_title("tessera, MLP 784-1024-1024-10: strong (B = 256) and weak (128 rows/rank)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "scaling.png"), dpi=120)
    print(f"wrote {a.out}/scaling.csv, scaling_model.csv, scaling.png{', layouts.csv' if a.layouts else ''}")


if __name__ == "__main__":
    main()
