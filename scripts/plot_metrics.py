#!/usr/bin/python3
"""Plots a run's metrics.jsonl: training loss (and accuracy) per step, validation curves.

usage: plot_metrics.py RUN/metrics.jsonl [--out metrics.png]
Uses Debian's python3-matplotlib; writes a PNG (no display needed).
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics")
    ap.add_argument("--out", default=None, help="PNG path (default: next to metrics.jsonl)")
    a = ap.parse_args()
    train, evals = [], []
    with open(a.metrics) as f:
        for n, line in enumerate(f, 1):
            try:
                o = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"plot_metrics: {a.metrics}:{n}: not JSON ({e})")
            if o.get("event") == "train":
                train.append(o)
            elif o.get("event") == "eval":
                evals.append(o)
    if not train:
        sys.exit(f"plot_metrics: {a.metrics} has no training lines")
    metric = "rmse" if "rmse" in (evals[0] if evals else {}) else "accuracy"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot([o["step"] for o in train], [o["loss"] for o in train], label="train (interval mean)")
    if evals:
        ax1.plot([o["step"] for o in evals], [o["loss"] for o in evals], "o-", label="validation")
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss")
    ax1.set_yscale("log")
    ax1.legend()
    ax1.grid(alpha=0.3)
    if "accuracy" in train[0]:
        ax2.plot([o["step"] for o in train], [o["accuracy"] for o in train], label="train (interval)")
    if evals:
        ax2.plot([o["step"] for o in evals], [o[metric] for o in evals], "o-", label="validation")
    ax2.set_xlabel("step")
    ax2.set_ylabel(metric)
    ax2.legend()
    ax2.grid(alpha=0.3)
    sps = sorted(o["samples_per_s"] for o in train)[len(train) // 2]
    fig.suptitle(f"{a.metrics}  (median {sps:,.0f} samples/s)")
    fig.tight_layout()
    default = a.metrics.rsplit("/", 1)[0] + "/metrics.png" if "/" in a.metrics else "metrics.png"
    out = a.out or default
    fig.savefig(out, dpi=110)
    print(f"plot_metrics: wrote {out}")


if __name__ == "__main__":
    main()
