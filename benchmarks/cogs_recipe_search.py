"""CPU recipe search on COGS: CPU-minutes per seed to dev exact match >= 90 % at N = 4000.

Each recipe is one `compgen-jax train` of one seed of the tiny encoder-decoder on a random
N = 4000 COGS manifest, evaluated every --eval_period steps on fixed 200-example dev and gen
subsets (gen stratified over its 21 categories) and stopped by a ThresholdStop on dev. The CPU
time of the training process (user + system, its children included) is the cost: it counts the
same work on a loaded machine as on an idle one, unlike wall time. Prints a markdown table and
writes it with every recipe's results under --out.

    python benchmarks/cogs_recipe_search.py --out runs/recipes [--recipes a,b] [--max_steps 600]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from analysis.programme import markdown_table

REPO = Path(__file__).resolve().parents[1]

BASE = [
    "--gin_file=runs/train.gin", "--gin_file=models/tiny_long.gin",
    "--gin.MIXTURE_OR_TASK_NAME='cogs'", "--gin.N_UNIQUE=4000", "--gin.NUM_SEEDS=1",
    "--gin.TrainConfig.eval_splits=('dev', 'gen')", "--gin.TrainConfig.max_eval_examples=200",
    "--gin.TrainConfig.stratify_eval=True", "--gin.TrainConfig.eval_batch_size=200",
    "--gin.TrainConfig.tensorboard=False", "--gin.TrainConfig.save_predictions='none'",
    "--gin.TrainConfig.stop_rules=(@ThresholdStop(),)", "--gin.ThresholdStop.split='dev'",
    "--gin.ThresholdStop.threshold=0.9",
]
FAST = ["--gin.LEARNING_RATE=3e-3", "--gin.OptimizerConfig.decay='constant'",
        "--gin.BATCH_SIZE=128"]
RELATIVE = ["--gin.TransformerConfig.position='relative'"]
# Each recipe changes one thing from the one above it or from `fast_relative`, so the table says
# which change mattered.
RECIPES = {
    "shipped": ["--gin.BATCH_SIZE=32"],  # AdamW 1e-3, 100 warmup + rsqrt decay, batch 32
    "fast": FAST,  # LR 3e-3 constant after warmup, batch 128
    "fast_relative": FAST + RELATIVE,
    "fast_relative_smooth": FAST + RELATIVE + ["--gin.TransformerConfig.label_smoothing=0.1"],
    "fast_relative_dropout": FAST + RELATIVE + ["--gin.TransformerConfig.dropout_rate=0.1"],
    "fast_relative_wide": FAST + RELATIVE + ["--gin.TransformerConfig.emb_dim=128",
                                             "--gin.TransformerConfig.mlp_dim=256"],
}


def run_recipe(name: str, out: Path, max_steps: int, eval_period: int) -> dict:
    """Train one recipe in a fresh process; its row of the table."""
    model_dir = out / name
    args = [*BASE, *RECIPES[name], f"--gin.MODEL_DIR='{model_dir}'",
            f"--gin.TRAIN_STEPS={max_steps}", f"--gin.EVAL_PERIOD={eval_period}",
            f"--gin.TrainConfig.steps_per_call={eval_period}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "compgen_jax.cli", "train", *args], cwd=REPO,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=False)
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"recipe {name}: exit {proc.returncode}: {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    table = pd.read_csv(model_dir / "results.csv")
    dev = table[table.split == "dev"].set_index("step").exact_match
    easy = table[table.split == "gen:easy"].set_index("step").exact_match
    reached = dev[dev >= 0.9]
    step = int(reached.index[0]) if len(reached) else int(dev.index[-1])
    return {"recipe": name, "steps": step, "reached_90": bool(len(reached)),
            "dev_em": float(dev[step]), "gen_easy_em": float(easy[step]),
            "cpu_min": cpu / 60, "wall_min": wall / 60,
            "dev_curve": " ".join(f"{s}:{v:.2f}" for s, v in dev.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--max_steps", type=int, default=600)
    parser.add_argument("--eval_period", type=int, default=100)
    args = parser.parse_args()
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"--recipes: unknown {unknown}; known: {list(RECIPES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        row = run_recipe(name, args.out, args.max_steps, args.eval_period)
        rows.append(row)
        print(json.dumps(row), flush=True)
    table = markdown_table(pd.DataFrame(rows))
    (args.out / "recipes.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
