#!/usr/bin/env python3
"""Training's FLOP rate against a BLAS matrix product, measured side by side in one run.

The bar of issue 18: AH clean, the paper's networks, 8 instances, the fast CPU backend
(`cpu-gemm`); the FLOP rate of training (trained agent-steps/s x 2.8 MFLOP, the issue's
estimate of the paper networks' cost per trained agent-step) is at least 30% of the rate NumPy's
BLAS reaches on a `256x256 @ 256x128` float32 product on all cores of the same machine, in the
same run. Absolute rates differ between machines of the same kind by 2x, so only this ratio,
measured here and now, means anything.

What it does: NumPy's product (best of several windows), then `fairground bench train`, then
NumPy again (the machine may have slowed or sped up meanwhile; the better NumPy figure is the
one compared against, which is the harder bar). Prints one JSON line per measurement and a
final summary line; exits 1 when the ratio is under `--bar`.

    python3 benches/blas_compare.py                  # builds the release binary if needed
    python3 benches/blas_compare.py --backend cpu    # the twins, for comparison
    python3 benches/blas_compare.py --bench-args "--threads 1"

Needs numpy (`pip install numpy`); the thread count of NumPy's BLAS is its default (all cores),
or what OPENBLAS_NUM_THREADS / OMP_NUM_THREADS say.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

MFLOP_PER_TRAINED = 2.8


def numpy_rate(seconds, windows=5):
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 256), dtype=np.float32)
    b = rng.standard_normal((256, 128), dtype=np.float32)
    out = np.empty((256, 128), dtype=np.float32)
    flops = 2 * 256 * 256 * 128
    np.matmul(a, b, out=out)
    t0 = time.perf_counter()
    np.matmul(a, b, out=out)
    one = max(time.perf_counter() - t0, 1e-7)
    reps = max(1, int(seconds / windows / one))
    best = 0.0
    for _ in range(windows):
        t = time.perf_counter()
        for _ in range(reps):
            np.matmul(a, b, out=out)
        best = max(best, flops * reps / (time.perf_counter() - t) / 1e9)
    cfg = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
    blas = (cfg or {}).get("Build Dependencies", {}).get("blas", {})
    return {
        "measure": "numpy_matmul",
        "shape": "256x256@256x128",
        "dtype": "float32",
        "numpy": np.__version__,
        "blas": f"{blas.get('name', '?')} {blas.get('version', '')}".strip(),
        "gflop_per_s": round(best, 2),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--binary", default=None, help="fairground binary [default: target/release/fairground, built if missing]")
    p.add_argument("--backend", default="cpu-gemm", help="bench train backend [default: cpu-gemm]")
    p.add_argument("--iterations", default="3", help="timed iterations of bench train [default: 3]")
    p.add_argument("--bench-args", default="", help="more arguments for bench train")
    p.add_argument("--numpy-seconds", type=float, default=2.0, help="seconds of each NumPy measurement")
    p.add_argument("--bar", type=float, default=0.30, help="the least ratio that passes [default: 0.30]")
    args = p.parse_args()

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = args.binary or os.path.join(root, "target", "release", "fairground")
    if args.binary is None:
        # cargo decides whether the binary is up to date.
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "fairground"], cwd=root, check=True)

    before = numpy_rate(args.numpy_seconds)
    print(json.dumps(before), flush=True)
    cmd = [binary, "bench", "train", "--env", "ah", "--instances", "8", "--backend", args.backend,
           "--iterations", args.iterations] + shlex.split(args.bench_args)
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.stderr.write(run.stderr)
        sys.exit(run.returncode)
    line = json.loads(run.stdout.strip().splitlines()[-1])
    print(json.dumps(line), flush=True)
    after = numpy_rate(args.numpy_seconds)
    print(json.dumps(after), flush=True)

    blas = max(before["gflop_per_s"], after["gflop_per_s"])
    steps = line["trained_agent_steps_per_s"]
    training = steps * MFLOP_PER_TRAINED / 1000.0
    ratio = training / blas
    summary = {
        "measure": "blas_compare",
        "command": " ".join(shlex.quote(c) for c in cmd),
        "backend": line["backend"],
        "threads": line.get("threads"),
        "trained_agent_steps_per_s": steps,
        "training_gflop_per_s": round(training, 2),
        "counted_model_gflop_per_s": line.get("model_gflop_per_s"),
        "numpy_gflop_per_s": blas,
        "ratio": round(ratio, 4),
        "bar": args.bar,
        "pass": ratio >= args.bar,
    }
    print(json.dumps(summary), flush=True)
    sys.exit(0 if summary["pass"] else 1)


if __name__ == "__main__":
    main()
