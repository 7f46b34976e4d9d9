"""Issue 22, 2: progress follows where it goes (bars on a terminal, whole lines elsewhere, or nothing)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tqdm import tqdm

from bench import progress
from bench.errors import BenchError
from bench.progress import PlainBar
from bench.train import parallel

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.fixture(autouse=True)
def _fresh_mode() -> Iterator[None]:
    """Every test starts in ``auto`` with a live stderr and leaves it so."""
    progress._reader_gone = False
    with progress.use_mode("auto"):
        yield
    progress._reader_gone = False


def test_plain_lines_every_tenth_with_rate_and_eta() -> None:
    clock, lines = Clock(), []
    for _ in PlainBar(range(100), desc="decoding", unit="img", clock=clock, emit=lines.append):
        clock.t += 0.5
    assert lines[0] == "decoding: start (0/100 img)"
    assert lines[1] == "decoding: 10/100 img (10%), 2.0 img/s, elapsed 00:05, ETA 00:45"
    assert lines[5] == "decoding: 50/100 img (50%), 2.0 img/s, elapsed 00:25, ETA 00:25"
    assert lines[-1] == "decoding: done, 100/100 img in 00:50 (2.0 img/s)"
    assert len(lines) == 11  # start, 10% .. 90%, done


def test_plain_line_every_30_seconds_on_a_slow_stage() -> None:
    """A resumed stage (initial 500 of 1,000) at 40 s per step: one line per step (30 s passed),
    rate counted from the resume point, postfix shown."""
    clock, lines = Clock(), []
    bar = PlainBar(total=1000, initial=500, desc="classifier", clock=clock, emit=lines.append)
    for _ in range(3):
        clock.t += 40
        bar.update()
        bar.set_postfix(loss="0.513", tune_auc="0.500")
    bar.close()
    assert lines[0] == "classifier: start (500/1,000 it)"
    assert lines[1] == "classifier: 501/1,000 it (50%), 40.0 s/it, elapsed 00:40, ETA 5:32:40"
    assert lines[3].endswith("ETA 5:31:20, loss=0.513, tune_auc=0.500")
    assert lines[-1] == "classifier: done, 503/1,000 it in 02:00 (40.0 s/it), loss=0.513, tune_auc=0.500"


def test_plain_lines_are_at_most_one_per_tenth_or_30_seconds() -> None:
    clock, lines = Clock(), []
    with PlainBar(total=10_000, desc="stargan", clock=clock, emit=lines.append) as bar:
        for _ in range(10_000):
            clock.t += 0.001  # 10 s in all: only the 10% marks
            bar.update()
    assert len(lines) == 11
    assert [int(re.search(r"\((\d+)%\)", line).group(1)) for line in lines[1:-1]] == list(range(10, 100, 10))


def test_plain_stage_ended_by_an_error_says_stopped() -> None:
    clock, lines = Clock(), []
    with pytest.raises(KeyboardInterrupt):
        with PlainBar(total=4, desc="evaluating", unit="batch", clock=clock, emit=lines.append) as bar:
            bar.update()
            raise KeyboardInterrupt
    assert lines[-1].startswith("evaluating: stopped, 1/4 batch in")
    lines.clear()
    with pytest.raises(ValueError):
        for i in PlainBar(range(4), desc="loop", clock=clock, emit=lines.append):
            if i == 2:
                raise ValueError
    assert lines[-1].startswith("loop: stopped, 2/4 it in")


def test_auto_mode_follows_the_stream() -> None:
    assert progress.resolve("auto", Tty()) == "bar"
    assert progress.resolve("auto", io.StringIO()) == "plain"
    assert [progress.resolve(m, Tty()) for m in ("bar", "plain", "none")] == ["bar", "plain", "none"]
    with pytest.raises(BenchError, match="--progress must be one of auto, bar, plain, none, got 'fancy'"):
        progress.set_mode("fancy")


@pytest.mark.parametrize("mode", ["plain", "none", "bar"])
def test_bar_and_note_in_each_mode(mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    with progress.use_mode(mode):
        progress.note("== data")
        with progress.bar(total=20, desc="classifier") as bar:
            for _ in range(20):
                bar.update()
        for _ in progress.bar(range(3), desc="hidden", enabled=False):
            pass
    err = capsys.readouterr().err
    assert "hidden" not in err
    if mode == "none":
        assert err == ""
    elif mode == "plain":
        assert "\r" not in err
        assert err.splitlines()[:2] == ["== data", "classifier: start (0/20 it)"]
        assert err.splitlines()[-1].startswith("classifier: done, 20/20 it in")
    else:
        assert "== data" in err and "\r" in err and "20/20" in err  # tqdm redraws in place


def test_use_mode_restores_the_previous_mode() -> None:
    with progress.use_mode("none"):
        assert progress.current() == "none"
        with progress.use_mode("plain"):
            assert progress.current() == "plain"
        assert progress.current() == "none"


def test_closed_stderr_silences_progress_and_the_work_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", ClosedPipe())
    with progress.use_mode("plain"):
        total = sum(x for x in progress.bar(range(5), desc="work"))
        progress.note("== next stage")
        assert progress.current() == "none"
    assert total == 10


def test_every_progress_bar_goes_through_bench_progress() -> None:
    """tqdm is used by bench/progress.py only, so every bar follows the mode."""
    users = [
        str(path.relative_to(ROOT))
        for folder in ("bench", "methods")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if re.search(r"^\s*(from tqdm|import tqdm)", path.read_text(), re.M)
    ]
    assert users == ["bench/progress.py"]


def test_workers_take_the_parents_concrete_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run --jobs N``: each worker process is started with the parent's resolved mode."""
    monkeypatch.setattr(parallel, "die_with_parent", lambda parent: None)
    seen: dict[str, object] = {}

    class Pool:
        def __init__(self, jobs: int, mp_context: object, initializer: object, initargs: tuple) -> None:
            seen["initargs"] = initargs

        def __enter__(self) -> Pool:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(parallel, "_collect", lambda pool, tasks, results, show: None)
    with progress.use_mode("plain"):
        parallel.train_concurrently([], parallel.Layout(2, 1, 2))
    assert seen["initargs"][-1] == "plain"

    class Rows:
        def get(self) -> int:
            return 1

    threads = torch.get_num_threads()
    with progress.use_mode("bar"):
        parallel._init_worker(threads, Rows(), 0, "none")  # what a worker does first
        assert progress.current() == "none"


def test_tqdm_gets_the_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with progress.use_mode("bar"):
        bar = progress.bar(total=2, desc="x", leave=True)
        assert isinstance(bar, tqdm)
        bar.update(2)
        bar.close()
    assert "2/2" in capsys.readouterr().err


def test_plain_stage_closed_in_a_finally_block_by_an_interrupt_says_stopped() -> None:
    """The GAN loop closes its bar in ``finally``: an interrupt there is a stop, not an end."""
    clock, lines = Clock(), []
    bar = PlainBar(total=12, desc="stargan", clock=clock, emit=lines.append)
    with pytest.raises(KeyboardInterrupt):
        try:
            bar.update(3)
            raise KeyboardInterrupt
        finally:
            bar.close()
    assert lines[-1].startswith("stargan: stopped, 3/12 it in")
    bar = PlainBar(total=12, desc="stargan", clock=clock, emit=lines.append)
    try:
        bar.update(12)
    finally:
        bar.close()
    assert lines[-1].startswith("stargan: done, 12/12 it in")


def test_bar_mode_note_clears_the_bar_then_redraws_it(capsys: pytest.CaptureFixture[str]) -> None:
    with progress.use_mode("bar"):
        with progress.bar(total=10, desc="stargan") as bar:
            bar.update(3)
            progress.note("== evaluate stargan")
    err = capsys.readouterr().err
    assert re.search(r"\r +\r== evaluate stargan\n\rstargan: +30%", err), repr(err)
