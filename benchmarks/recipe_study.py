"""The recipe study behind ``train.recipe``: every GAN under each candidate recipe, judged by its
tune-split learning curve per CPU-second (docs/decisions.md, "GAN recipe").

Each (method, recipe) trains with ``python -m bench train`` in its own process on one thread
(``--jobs`` at a time), then the curves are read back from the checkpoints and summarised at the
CPU time every run of that method reached. Nothing here touches the test split.

    python benchmarks/recipe_study.py --out /tmp/recipe-study --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

METHODS = ("stargan", "fixedpoint", "vagan", "pillet", "pillet_nosab")
# name -> (--set items); iterations chosen so that each candidate gets about the same CPU time
CANDIDATES = {
    "paper": ["train.recipe=paper", "train.iterations=2400", "train.eval_every=300"],
    "fast": ["train.recipe=fast", "train.iterations=1200", "train.eval_every=150"],
    "fast-r1": ["train.recipe=fast", "train.gan_loss=r1", "train.iterations=1200", "train.eval_every=150"],
}
METRICS = ("accuracy_p2h", "mask_pooled_auc", "pooled_auc", "change_rate_tol8_p2h", "change_rate_tol8_h2h")


def _train(method: str, recipe: str, out: Path, preset: str) -> Path:
    folder = out / f"{method}-{recipe}"
    if (folder / "final.pt").is_file():
        return folder
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    cmd = [sys.executable, "-m", "bench", "train", "--method", method, "--preset", preset, "--out", str(folder)]
    for item in CANDIDATES[recipe]:
        cmd += ["--set", item]
    with open(out / f"{method}-{recipe}.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    return folder


def _curve(folder: Path) -> list[dict[str, float]]:
    saved = torch.load(folder / "final.pt", map_location="cpu", weights_only=True)
    return saved["curves"]


def _at(curve: list[dict[str, float]], seconds: float, key: str) -> float:
    """The metric at ``seconds`` of training, linearly interpolated between points."""
    xs = [p["seconds"] for p in curve if key in p]
    ys = [p[key] for p in curve if key in p]
    return float(np.interp(seconds, xs, ys)) if xs else float("nan")


def summarise(out: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Per method and recipe: seconds trained, and each metric at the final point and at the CPU time
    every recipe of that method reached (the fair comparison)."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for method in METHODS:
        curves = {
            r: _curve(out / f"{method}-{r}") for r in CANDIDATES if (out / f"{method}-{r}" / "final.pt").is_file()
        }
        if not curves:
            continue
        common = min(c[-1]["seconds"] for c in curves.values())
        table[method] = {}
        for recipe, curve in curves.items():
            row = {"seconds": curve[-1]["seconds"], "iterations": curve[-1]["iteration"], "common_seconds": common}
            for key in METRICS:
                row[f"{key}@common"] = _at(curve, common, key)
                row[f"{key}@end"] = curve[-1].get(key, float("nan"))
            table[method][recipe] = row
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # the evaluator is trained (or found) once, before the concurrent runs, which then all reuse it
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from bench.evaluate.judge import get_evaluator; from bench.config import preset; "
            f"from bench.data import open_data; c = preset({args.preset!r}); get_evaluator(c, open_data(c.data))",
        ],
        check=True,
    )
    jobs = [(m, r) for m in args.methods.split(",") for r in CANDIDATES]
    with ThreadPoolExecutor(args.jobs) as pool:
        for folder in pool.map(lambda job: _train(*job, args.out, args.preset), jobs):
            print(f"done {folder.name}", flush=True)
    table = summarise(args.out)
    (args.out / "summary.json").write_text(json.dumps(table, indent=2))
    print(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
