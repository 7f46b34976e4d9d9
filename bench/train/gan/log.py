"""A GAN run's training log: the progress bar and a JSON-lines file of losses and learning-curve points."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from bench import progress
from bench.atomic import atomic_write_text
from bench.train.gan.losses import Terms, total

LOG_NAME = "train_log.jsonl"


def truncate_log(path: Path, iteration: int) -> None:
    """Drop log lines written after ``iteration`` (by a run killed after its last checkpoint)."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if _logged_iteration(line) <= iteration]
    atomic_write_text(path, "".join(line + "\n" for line in keep))


def _logged_iteration(line: str) -> float:
    """The iteration of a log line; infinity for a line cut short by a kill."""
    try:
        return json.loads(line)["iteration"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


def _summary(terms: Terms) -> dict[str, float]:
    return {"total": float(total(terms)), **{k: float(v) for k, v in terms.items()}}


class TrainLog:
    """Progress bar on the main process and a JSON-lines log of the losses in ``out_dir``."""

    def __init__(
        self,
        path: Path,
        start: int,
        end: int,
        images_per_iteration: int,
        show: bool,
        main: bool,
        label: str = "",
        row: int = 0,
    ) -> None:
        self.path = path
        self.main = main
        self.start = start
        self.images_per_iteration = images_per_iteration
        self.t0 = time.perf_counter()
        self.bar = progress.bar(
            total=end,
            initial=start,
            desc=label,
            unit="it",
            enabled=show and main,
            position=row,
            leave=row == 0,
            dynamic_ncols=True,
        )
        self.last_g: Terms | None = None

    def update(self, iteration: int, g_steps: int, d_terms: Terms, g_terms: Terms | None, write: bool) -> None:
        """Advance the bar; on ``write`` iterations also show and record the losses."""
        self.bar.update(1)
        self.last_g = g_terms if g_terms is not None else self.last_g
        if not (write and self.main):
            return
        rate = (iteration - self.start) * self.images_per_iteration / max(time.perf_counter() - self.t0, 1e-9)
        d = _summary(d_terms)
        g = _summary(self.last_g) if self.last_g is not None else {}
        self.bar.set_postfix({"D": f"{d['total']:.3f}", "G": f"{g.get('total', math.nan):.3f}", "img/s": f"{rate:.1f}"})
        with self.path.open("a") as fh:
            record = {"iteration": iteration, "g_step": g_steps, "d": d, "g": g, "images_per_s": rate}
            if not g:  # no generator step yet in this process (e.g. just after a resume): no G losses to log
                del record["g"]
            fh.write(json.dumps(record) + "\n")

    def curve(self, point: dict[str, float]) -> None:
        """Record a learning-curve point as its own log line (``{"iteration": ..., "curve": point}``)."""
        if self.main:
            with self.path.open("a") as fh:
                fh.write(json.dumps({"iteration": point["iteration"], "curve": point}) + "\n")

    def close(self) -> None:
        """Close the progress bar."""
        self.bar.close()
