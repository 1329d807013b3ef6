#!/usr/bin/python3
"""Samples/s of tessera against PyTorch on the reference MLP (784-1024-1024-10, batch 256,
SGD with momentum), at the same core count.

usage: compare_pytorch.py [--tessera build/tessera] [--steps 120] [--cores 1 2] [--repeats 3]
                          [--precision fp32 [bf16]] [--no-torch] [--ddp] [--shuffle]

--ddp adds the N = 2 comparison: tessera 2 ranks x 1 thread against PyTorch DistributedDataParallel
(gloo backend, over loopback TCP) 2 processes x 1 thread, each pinned to its own core, same model
and global batch (each process takes half of it), gradients averaged by DDP's bucketed allreduce.

PyTorch runs in the strongest setup measured in ../shared/LIMITS.md: AVX-512 OpenBLAS
(OPENBLAS_CORETYPE unset), no per-step fresh pages (GLIBC_TUNABLES mmap/trim thresholds) and,
for two threads, OMP_WAIT_POLICY=PASSIVE. Its data is a tensor in memory; tessera reads every
batch from the HDF5 file. Each figure is the median over --repeats runs of the median
steady-state samples/s (first 20 steps excluded); each repeat runs every tessera layout and then
PyTorch, so the load of the moment hits both, and the per-repeat ratios are printed too. Both run
pinned to the same cores (taskset).
Both read the rows in file order by default (PyTorch slices its tensor, tessera trains with
data.shuffle = false); --shuffle makes both shuffle: PyTorch gathers each batch from a new
permutation every epoch (as a shuffling DataLoader does), tessera keeps data.shuffle = true and
reads the scattered rows from HDF5 on its read-ahead thread, which shares the cores (≈ 6% of
one core's time at 1 core here, against < 1% in file order).
--precision fp32 bf16 also trains tessera with train.precision = "bf16" in every layout, runs
interleaved with the fp32 ones, and prints the bf16 / fp32 ratio of the same run (PyTorch stays
float32; it is compared with tessera's best fp32 layout). --no-torch skips PyTorch.
Needs python3-torch, python3-h5py and OpenBLAS (`bash scripts/setup.sh python3-torch
libopenblas0-pthread`; without OpenBLAS, Debian's PyTorch falls back to the reference BLAS).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

# One PyTorch process: plain, or one rank of DistributedDataParallel (gloo) when started with
# WORLD_SIZE in its environment, taking its share of each global batch.
TORCH_CHILD = r"""
import os, sys, time, json, statistics
import h5py, numpy as np, torch
threads, steps, batch, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
shuffle = sys.argv[5] == "1"
ddp = "WORLD_SIZE" in os.environ
torch.set_num_threads(threads)
if ddp:
    import torch.distributed as dist
    dist.init_process_group("gloo")
rank, world = (dist.get_rank(), dist.get_world_size()) if ddp else (0, 1)
torch.manual_seed(1)
with h5py.File(path, "r") as f:
    x = torch.from_numpy(f["X"][()])
    y = torch.from_numpy(f["y"][()].astype(np.int64))
model = torch.nn.Sequential(torch.nn.Linear(784, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024),
                            torch.nn.ReLU(), torch.nn.Linear(1024, 10))
if ddp:
    model = torch.nn.parallel.DistributedDataParallel(model)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
loss_fn = torch.nn.CrossEntropyLoss()
per_epoch = x.shape[0] // batch
local = batch // world
times = []
for s in range(steps):
    i = s % per_epoch
    t0 = time.perf_counter()
    lo = i * batch + rank * local
    if shuffle:
        if i == 0:
            perm = torch.randperm(x.shape[0])  # the same on every rank: same seed, same calls
        idx = perm[lo:lo + local]
        xb, yb = x[idx], y[idx]
    else:
        xb, yb = x[lo:lo + local], y[lo:lo + local]
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(xb), yb)
    loss.backward()
    opt.step()
    times.append(time.perf_counter() - t0)
steady = times[20:]
# Median over windows of 10 steps, like tessera's log_every = 10 intervals.
windows = [batch * 10 / sum(steady[k:k + 10]) for k in range(0, len(steady) - 9, 10)]
if rank == 0:
    print(json.dumps({"samples_per_s": statistics.median(windows), "loss": float(loss)}))
if ddp:
    dist.destroy_process_group()
"""


def run_ddp(steps, batch, data, port, shuffle):
    """PyTorch DDP (gloo), 2 processes x 1 thread, process r pinned to core r."""
    procs = []
    for r in range(2):
        env = dict(torch_env(1), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(r), WORLD_SIZE="2")
        procs.append(subprocess.Popen(["taskset", "-c", str(r), sys.executable, "-c", TORCH_CHILD, "1", str(steps), str(batch),
                                       data, "1" if shuffle else "0"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outs):
        if p.returncode != 0:
            sys.exit(f"compare_pytorch: DDP process failed:\n{err}")
    return json.loads(outs[0][0].strip().splitlines()[-1])["samples_per_s"]


def torch_env(threads):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("WORLD_SIZE", None)  # the child runs DDP only when run_ddp sets it
    # OpenBLAS (pthread flavour) starts its own threads unless told; torch.set_num_threads
    # only limits OpenMP.
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    env["GLIBC_TUNABLES"] = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296"
    if threads > 1:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def pin(cores):
    """Both frameworks run confined to the same `cores` CPUs."""
    return ["taskset", "-c", f"0-{cores - 1}"]


def run_torch(threads, steps, batch, data, shuffle):
    out = subprocess.run(pin(threads) + [sys.executable, "-c", TORCH_CHILD, str(threads), str(steps), str(batch), data,
                                         "1" if shuffle else "0"],
                         env=torch_env(threads), check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_s"]


def run_tessera(tessera, ranks, threads, steps, batch, config, workdir, precision="fp32"):
    run = os.path.join(workdir, f"run-{ranks}x{threads}-{precision}")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = pin(ranks * threads) + ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", str(ranks), tessera, "train", config, "--quiet",
           "--set", f"train.threads={threads}", "--set", f"train.max_steps={steps}",
           "--set", f"train.batch_size={batch}", "--set", f"checkpoint.dir={run}",
           # PyTorch saves nothing: one checkpoint, after the last step, not one per 40-step epoch.
           "--set", f"checkpoint.every_steps={steps}",
           "--set", f"train.precision={precision}"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    lines = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
    rates = [o["samples_per_s"] for o in lines if o["event"] == "train" and o["step"] > 20]
    return statistics.median(rates)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tessera", default=os.path.join(here, "..", "build", "tessera"))
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--cores", type=int, nargs="*", default=[1, 2], help="core counts to compare (none: only --ddp)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--ddp", action="store_true", help="add tessera 2 ranks x 1 thread against PyTorch DDP gloo 2 x 1")
    ap.add_argument("--shuffle", action="store_true", help="both shuffle the rows (default: both read them in file order)")
    a = ap.parse_args()
    if "fp32" not in a.precision:
        sys.exit("compare_pytorch: --precision needs fp32 (the baseline of every ratio)")
    blas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    if not a.no_torch and "openblas" not in blas:
        sys.exit(f"compare_pytorch: PyTorch would use {blas} (reference BLAS, ~30x slower); "
                 "install OpenBLAS first: bash scripts/setup.sh python3-torch libopenblas0-pthread")
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "mlp.h5")
        rows = a.batch * 40
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        subprocess.run([a.tessera, "data", "synth", "--out", data, "--rows", str(rows), "--features", "784",
                        "--classes", "10", "--seed", "3"], check=True, env=env, capture_output=True)
        config = os.path.join(work, "mlp.toml")
        with open(config, "w") as f:
            f.write(f'[data]\ntrain = "mlp.h5"\nshuffle = {"true" if a.shuffle else "false"}\n[model]\nkind = "mlp"\nhidden = [1024, 1024]\n'
                    '[optimizer]\nkind = "sgd"\nlr = 0.01\nmomentum = 0.9\n'
                    f'[train]\nbatch_size = {a.batch}\nepochs = 1000\nlog_every = 10\n')
        print(f"reference MLP 784-1024-1024-10, batch {a.batch}, SGD momentum; median of {a.repeats} runs "
              f"of {a.steps} steps\n")
        print(f"{'cores':>5}  {'tessera layout':>15}  {'precision':>9}  {'tessera':>10}  {'pytorch':>10}  {'ratio':>6}")
        for cores in a.cores:
            layouts = [(1, 1)] if cores == 1 else [(1, cores), (cores, 1)]
            # Every layout and precision of tessera and PyTorch in turn within each repeat, so
            # that the load of the moment (another tenant shares these cores) hits all alike.
            runs = {(l, p): [] for l in layouts for p in a.precision}
            torch_runs = []
            for _ in range(a.repeats):
                for (ranks, threads) in layouts:
                    for p in a.precision:
                        runs[((ranks, threads), p)].append(
                            run_tessera(a.tessera, ranks, threads, a.steps, a.batch, config, work, p))
                if not a.no_torch:
                    torch_runs.append(run_torch(cores, a.steps, a.batch, data, a.shuffle))
            best, best_layout = 0.0, None
            for (ranks, threads) in layouts:
                rates = {p: statistics.median(runs[((ranks, threads), p)]) for p in a.precision}
                for p, r in rates.items():
                    extra = f"  {'bf16/fp32':>10}  {r / rates['fp32']:>6.2f}" if p != "fp32" else ""
                    print(f"{cores:>5}  {f'{ranks} rank x {threads} thr':>15}  {p:>9}  {r:>10,.0f}{extra}")
                if rates["fp32"] > best:
                    best, best_layout = rates["fp32"], (ranks, threads)
            if a.no_torch:
                continue
            t = statistics.median(torch_runs)
            paired = [x / y for x, y in zip(runs[(best_layout, "fp32")], torch_runs)]
            print(f"{cores:>5}  {f'best {best_layout[0]}x{best_layout[1]}':>15}  {'fp32':>9}  {best:>10,.0f}  {t:>10,.0f}  "
                  f"{best / t:>6.2f}")
            print(f"{'':>5}  runs: tessera {', '.join(f'{v:,.0f}' for v in runs[(best_layout, 'fp32')])}; "
                  f"PyTorch {', '.join(f'{v:,.0f}' for v in torch_runs)}; "
                  f"ratio per repeat {', '.join(f'{r:.2f}' for r in paired)}")
        if a.ddp:
            # Alternating runs, so that machine noise hits both alike; ratios are of medians.
            tess, ddp = [], []
            for k in range(a.repeats):
                tess.append(run_tessera(a.tessera, 2, 1, a.steps, a.batch, config, work))
                ddp.append(run_ddp(a.steps, a.batch, data, 29500 + k, a.shuffle))
            tm, dm = statistics.median(tess), statistics.median(ddp)
            print(f"\nN = 2: tessera 2 ranks x 1 thread against PyTorch DDP (gloo) 2 processes x 1 thread, "
                  f"global batch {a.batch}")
            print(f"  tessera runs {', '.join(f'{v:,.0f}' for v in tess)}; DDP runs {', '.join(f'{v:,.0f}' for v in ddp)}")
            print(f"  median samples/s: tessera {tm:,.0f}, DDP {dm:,.0f}, ratio {tm / dm:.2f}")


if __name__ == "__main__":
    main()
