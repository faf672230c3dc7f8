#!/usr/bin/env python3
"""The reference's own AH Fair-PPO training rate on this machine, for issue 18's equal-work bar.

Runs the reference's `fairPPO-AH/DP/train.py` unmodified (a checkout of
`gabrielelamalfakcl/fairness-aware-ppo`, given by path) for a few full episodes on the CPU, with
`wandb` replaced by a no-op module (the script logs to wandb; nothing it computes depends on it),
and prints one JSON line: wall seconds, trained agent-steps (40 agents x steps x episodes) and
their rate. Its update trains each group network on both groups' memories, so compare it with
`fairground bench train --env ah --profile reference` (the same work per trained agent-step),
run right before or after on the same machine:

    pip install torch numpy tqdm
    python3 tools/refcompare/reftrain_rate.py --reference PATH/fairness-aware-ppo --episodes 2
    fairground bench train --env ah --profile reference --instances 1 \\
        --rollout-steps 3000 --iterations 2 --backend cpu-gemm

PyTorch uses all cores by default (`torch.get_num_threads()` is printed); the weights the script
saves at the end go to a temporary directory.
"""

import argparse
import json
import os
import runpy
import sys
import tempfile
import time
import types


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reference", required=True, help="path of a fairness-aware-ppo checkout")
    p.add_argument("--episodes", type=int, default=2)
    p.add_argument("--steps", type=int, default=3000, help="steps per episode (the paper's 3000)")
    p.add_argument("--alpha", default="0.5")
    p.add_argument("--beta", default="0.5")
    args = p.parse_args()

    script = os.path.join(os.path.abspath(args.reference), "fairPPO-AH", "DP", "train.py")
    if not os.path.isfile(script):
        sys.exit(f"--reference: no fairPPO-AH/DP/train.py under {args.reference}")

    wandb = types.ModuleType("wandb")
    for name in ("init", "log", "watch", "finish"):
        setattr(wandb, name, lambda *a, **k: None)
    sys.modules["wandb"] = wandb

    import torch

    sys.argv = [script, "--alpha", args.alpha, "--beta", args.beta,
                "--num_episodes", str(args.episodes), "--max_timesteps", str(args.steps),
                "--wandb_run_name", "rate", "--cuda", "cpu"]
    # What `python3 train.py` does: the script's own directory first on the path.
    sys.path.insert(0, os.path.dirname(script))
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        t0 = time.perf_counter()
        try:
            runpy.run_path(script, run_name="__main__")
        finally:
            os.chdir(cwd)
        wall = time.perf_counter() - t0
    trained = 40 * args.steps * args.episodes
    print(json.dumps({
        "measure": "reference_train",
        "script": "fairPPO-AH/DP/train.py",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "episodes": args.episodes,
        "steps": args.steps,
        "wall_s": round(wall, 3),
        "trained_agent_steps": trained,
        "trained_agent_steps_per_s": round(trained / wall),
    }))


if __name__ == "__main__":
    main()
