#!/usr/bin/python3
"""Step time of the reference MLP (784-1024-1024-10, global batch 256) with the gradient reduction
overlapped with backward against reduction after backward, and the communication left exposed.

usage: overlap.py [--tessera build/tessera] [--ranks 2] [--steps 200] [--repeats 3] [--bucket-mb 0.5]

Runs alternate (on, off, on, off, ...) so that machine noise hits both alike. Figures are medians
over the log intervals after the first 20 steps of every run: step time = batch / samples_per_s,
exposed communication = comm_wait_min_s per step: the wait, after backward, of the rank that
waited least (it arrived last, so its wait is communication alone, not waiting for a slower
rank); comm_wait_s (the mean over ranks) is shown beside it and includes load imbalance, and
compute_s (mean over ranks), which holds the copies MPI makes inside the polls during backward.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile


def run(tessera, ranks, steps, overlap, bucket_mb, config, work, tag):
    out = os.path.join(work, f"run-{tag}")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    subprocess.run(["mpirun", "--oversubscribe", "-np", str(ranks), tessera, "train", config, "--quiet",
                    "--set", f"train.max_steps={steps}", "--set", f"distributed.overlap={str(overlap).lower()}",
                    "--set", f"distributed.bucket_mb={bucket_mb}", "--set", "train.threads=1",
                    # One checkpoint, after the last step: none inside the measured intervals.
                    "--set", f"checkpoint.dir={out}", "--set", f"checkpoint.every_steps={steps}"],
                   env=env, check=True, capture_output=True)
    lines = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    train = [o for o in lines if o["event"] == "train" and o["step"] > 20]
    step_ms = [1e3 * 256 / o["samples_per_s"] for o in train]
    comm_ms = [1e3 * o["comm_wait_min_s"] / 10 for o in train]
    mean_ms = [1e3 * o["comm_wait_s"] / 10 for o in train]
    compute_ms = [1e3 * o["compute_s"] / 10 for o in train]
    return step_ms, comm_ms, mean_ms, compute_ms


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tessera", default=os.path.join(here, "..", "build", "tessera"))
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bucket-mb", type=float, default=0.5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "mlp.h5")
        subprocess.run([a.tessera, "data", "synth", "--out", data, "--rows", str(256 * 40), "--features", "784",
                        "--classes", "10", "--seed", "3"], check=True, capture_output=True,
                       env=dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1"))
        config = os.path.join(work, "mlp.toml")
        with open(config, "w") as f:
            f.write('[data]\ntrain = "mlp.h5"\n[model]\nkind = "mlp"\nhidden = [1024, 1024]\n'
                    '[optimizer]\nkind = "sgd"\nlr = 0.01\nmomentum = 0.9\n'
                    '[train]\nbatch_size = 256\nepochs = 1000\nlog_every = 10\n')
        res = {True: ([], [], [], []), False: ([], [], [], [])}
        for i in range(a.repeats):
            for overlap in (True, False):
                for k, v in enumerate(run(a.tessera, a.ranks, a.steps, overlap, a.bucket_mb, config, work, f"{overlap}-{i}")):
                    res[overlap][k].extend(v)
        print(f"reference MLP 784-1024-1024-10, global batch 256, {a.ranks} ranks x 1 thread, bucket_mb {a.bucket_mb}; "
              f"medians over {a.repeats} runs of {a.steps} steps (10-step intervals after step 20)")
        print(f"{'overlap':>8} {'step ms':>8} {'exposed comm ms':>16} {'exposed / step':>15} {'mean wait ms':>13} {'compute ms':>11}")
        for overlap in (True, False):
            step = statistics.median(res[overlap][0])
            comm = statistics.median(res[overlap][1])
            mean = statistics.median(res[overlap][2])
            compute = statistics.median(res[overlap][3])
            print(f"{'on' if overlap else 'off':>8} {step:>8.2f} {comm:>16.3f} {100 * comm / step:>14.1f}% {mean:>13.3f} {compute:>11.2f}")
        ratio = statistics.median(res[False][0]) / statistics.median(res[True][0])
        print(f"step time off / on: {ratio:.3f}")


if __name__ == "__main__":
    main()
