"""Command line: ``python -m bench <command>`` (data, list, train, run, score, baseline, compare, history)."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from bench import progress
from bench.cli import exits
from bench.cli.records import add_record_commands
from bench.config import Config
from bench.errors import BenchError
from bench.launch.submit import add_launch_args
from bench.records.tracking import TRACKERS
from bench.settings import load_config

Handler = Callable[[argparse.Namespace], int]


def _add_config_args(p: argparse.ArgumentParser, preset_default: str = "quick") -> None:
    p.add_argument(
        "--preset",
        default=preset_default,
        help=f"named preset: smoke, quick, standard, paper (default {preset_default})",
    )
    p.add_argument("--config", metavar="FILE.toml", help="TOML file overriding preset fields")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one field, e.g. --set train.iterations=100 (repeatable)",
    )
    _add_data_args(p)


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="RSNA folder (Kaggle layout); default: built-in synthetic radiographs")
    p.add_argument(
        "--include-not-normal",
        action="store_true",
        help="count 'No Lung Opacity / Not Normal' patients as Healthy instead of excluding them",
    )
    p.add_argument("--strict", action="store_true", help="turn every data problem into an error")


def resolve_config(args: argparse.Namespace) -> Config:
    """Preset + TOML + --set, then the data flags of the command line, checked once."""
    flags: dict[str, object] = {}
    if getattr(args, "data", None):
        flags["data.root"] = str(args.data)
    if getattr(args, "include_not_normal", False):
        flags["data.include_not_normal"] = True
    if getattr(args, "strict", False):
        flags["data.strict"] = True
    if getattr(args, "size", None) is not None:
        flags["data.size"] = args.size
    if getattr(args, "classifier_weights", None):
        flags["classifier.weights"] = str(args.classifier_weights)
    return load_config(
        getattr(args, "preset", "quick"), getattr(args, "config", None), getattr(args, "sets", []), flags
    )


def cmd_data_synth(args: argparse.Namespace) -> int:
    """Write built-in synthetic radiographs in the RSNA layout."""
    from bench.data.synth import SynthConfig, generate

    manifest = generate(
        Path(args.out),
        SynthConfig(n_pneumonia=args.n_pneumonia, n_healthy=args.n_healthy, size=args.size, seed=args.seed),
        progress=True,
    )
    counts = manifest.get("counts", {})
    print(f"wrote {sum(counts.values()) if counts else '?'} synthetic radiographs to {args.out} ({counts})")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    """Print patients per class, boxes, images found/missing/unreadable, and the split."""
    from bench.data import default_data_root
    from bench.data.inspect import data_info, format_info

    cfg = resolve_config(args)
    root = default_data_root(cfg.data, progress=not args.json)
    info = data_info(root, cfg.data, progress=not args.json)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def cmd_data_prepare(args: argparse.Namespace) -> int:
    """Build (or reuse) the decoded cache at the working size."""
    import time

    from bench.data import open_data
    from bench.data.inspect import print_unlabelled
    from bench.data.rsna import unlabelled_images

    if args.workers is not None and args.workers < 1:
        raise BenchError(f"--workers {args.workers}: the number of decoding processes must be at least 1")
    cfg = resolve_config(args)
    t0 = time.perf_counter()
    data = open_data(cfg.data, progress=True, workers=args.workers)
    c = data.cache
    state = "reused" if c.reused else f"built in {time.perf_counter() - t0:.1f} s"
    if c.resumed:
        state += f", resuming an interrupted build: {c.resumed:,} images were already decoded"
    print(
        f"cache {c.path} ({state}): {len(c.patient_ids):,} images at {c.size}px, "
        f"{len(c.missing):,} missing, {len(data.problems):,} skipped; "
        f"train {len(data.train):,}, tune {len(data.tune):,}, test {len(data.test):,}"
    )
    for p in data.problems[:10]:
        print(f"  skipped: {p}")
    print_unlabelled(unlabelled_images(data.labels.layout))
    return 0


def cmd_data_prior(args: argparse.Namespace) -> int:
    """Score the labels-only location prior (train-split mean box mask) on the test split."""
    from bench.data import default_data_root
    from bench.data.prior import format_prior, labels_prior, prior_json

    cfg = resolve_config(args)
    root = default_data_root(cfg.data, progress=not args.json)
    figures, counts = labels_prior(root, cfg.data, cfg.eval, image_size=args.image_size)
    print(json.dumps(prior_json(figures, counts), indent=2) if args.json else format_prior(root, figures, counts))
    return 0


def cmd_data_preview(args: argparse.Namespace) -> int:
    """Draw a contact sheet of images with their boxes."""
    from bench.data import open_data
    from bench.data.inspect import preview_sheet

    cfg = resolve_config(args)
    data = open_data(cfg.data, progress=True)
    out = preview_sheet(data, Path(args.out), n=args.n)
    print(f"wrote {out}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """List the registered methods."""
    from bench.registry import get_method_class, list_methods

    rows = []
    for name in list_methods():
        cls = get_method_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        rows.append({"name": name, "translates": cls.translates, "module": cls.__module__, "description": doc})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            kind = "translation" if r["translates"] else "attribution"
            print(f"{r['name']:<14} {kind:<12} {r['description']}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train one method (resuming from its last checkpoint with --resume)."""
    from bench import preflight
    from bench.data import open_data
    from bench.registry import get_method_class
    from bench.train.runner import checkpoints_root, train_method

    cfg = resolve_config(args)
    get_method_class(args.method)
    preflight.check_writable_dir(Path(args.out) if args.out else checkpoints_root(), "checkpoint folder")
    data = open_data(cfg.data, progress=True)
    preflight.check_splits(data, cfg.data, preflight.NEEDS_TRAINING)
    judge = None
    if get_method_class(args.method).translates and cfg.train.eval_every > 0:
        from bench.evaluate.judge import get_evaluator

        judge = get_evaluator(cfg, data, progress=True)  # scores the learning curves' P→H share
    out_dir = train_method(
        args.method, cfg, data, Path(args.out) if args.out else None, resume=args.resume, progress=True, judge=judge
    ).out_dir
    print(f"trained {args.method} ({cfg.preset}); checkpoints in {out_dir}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Train (or reuse) and evaluate methods, and write the run folder with its report."""
    from bench.launch.submit import cluster_options, launch_run
    from bench.pipeline import run_benchmark
    from bench.records.tracking import check_tracker, track_run

    cfg = resolve_config(args)
    launch, out = cluster_options(args), Path(args.out)
    check_tracker(args.track)
    if launch is not None:
        return launch_run(args.methods, cfg, args.seeds, out, not args.no_references, launch, args.track)
    result = run_benchmark(
        args.methods,
        cfg,
        n_seeds=args.seeds,
        runs_root=out,
        progress=True,
        references=not args.no_references,
        jobs=args.jobs,
        threads=args.threads,
    )
    print(f"report: {result.run_dir / 'report.md'}")
    if args.track:
        print(track_run(args.track, result.run_dir, result.record, out))
    failed = [n for n, m in result.record["methods"].items() if m["status"] != "ok"]
    for name in failed:
        print(f"error: method {name} failed: {result.record['methods'][name]['error']}", file=sys.stderr)
    return exits.OK if result.ok else exits.METHOD_FAILED


def cmd_score(args: argparse.Namespace) -> int:
    """Score lesion maps of an external method (.npz of patientId -> map)."""
    from bench.data import open_data
    from bench.evaluate.score import load_maps, score_maps, scored_tables, summary_json

    cfg = resolve_config(args)
    maps = load_maps(Path(args.maps))
    data = open_data(cfg.data, progress=not args.json)
    scored = score_maps(maps, data, cfg, split=args.split)
    if args.json:
        print(json.dumps(summary_json(args.name, scored), indent=2))
        return 0
    print(scored_tables(args.name, scored))
    print(f"\n{scored['n_images']} Pneumonia images scored ({args.split} split), {scored['missing']} without a map")
    if scored["ignored"]:
        print(
            f"ignored {len(scored['ignored'])} maps for patientIds not in the data: {', '.join(scored['ignored'][:5])}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of all commands."""
    parser = _Parser(
        prog="python -m bench",
        description="lesionbench: lesion localization benchmark for chest X-rays",
        epilog=exits.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="generate, inspect and prepare data").add_subparsers(
        dest="data_command", required=True
    )
    p = data.add_parser("synth", help="write built-in synthetic radiographs in the RSNA layout")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist or be empty)")
    p.add_argument("--n-pneumonia", type=int, default=600, metavar="N")
    p.add_argument("--n-healthy", type=int, default=900, metavar="N")
    p.add_argument("--size", type=int, default=256, metavar="PX", help="DICOM size in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_data_synth)

    p = data.add_parser("info", help="patients per class, boxes, images found/missing/unreadable, split")
    _add_data_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_data_info)

    p = data.add_parser("prepare", help="decode images into the memory-mapped cache")
    _add_data_args(p)
    p.add_argument("--size", type=int, required=True, metavar="PX", help="working resolution")
    p.add_argument(
        "--workers", type=int, metavar="N", help="decoding processes (default: one per core); same cache for any N"
    )
    p.set_defaults(func=cmd_data_prepare)

    p = data.add_parser("prior", help="labels-only location prior: what an image-blind map scores (CSVs only)")
    _add_data_args(p)
    p.add_argument("--size", type=int, default=64, metavar="PX", help="map resolution (default 64)")
    p.add_argument(
        "--image-size",
        type=int,
        metavar="PX",
        help="pixel frame of the CSV boxes (default: synthetic.json's size, else RSNA's 1024)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (the record's metric entries)")
    p.set_defaults(func=cmd_data_prior)

    p = data.add_parser("preview", help="contact sheet of images with boxes drawn")
    _add_data_args(p)
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--size", type=int, default=256, metavar="PX", help="resolution of the pictures (default 256)")
    p.add_argument("--n", type=int, default=12, help="number of images")
    p.set_defaults(func=cmd_data_preview)

    p = sub.add_parser("list", help="registered methods")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("train", help="train one method")
    p.add_argument("--method", required=True)
    _add_config_args(p)
    p.add_argument("--out", metavar="DIR", help="checkpoint folder (default: keyed by method, data and config)")
    p.add_argument("--resume", action="store_true", help="resume from the last checkpoint in the folder")
    p.add_argument(
        "--classifier-weights",
        metavar="FILE",
        help="classifier weights (.safetensors or state dict): skip its training",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("run", help="train and evaluate methods, write the report")
    p.add_argument(
        "--methods", default="all", help="'all' (every method and the reference maps) or comma-separated names"
    )
    p.add_argument(
        "--no-references",
        action="store_true",
        help="do not add the reference maps (chance, image, edges, prior, oracle, supervised ceiling) to the run",
    )
    _add_config_args(p)
    p.add_argument("--out", metavar="DIR", default="results/runs", help="runs folder (default results/runs)")
    p.add_argument("--seeds", type=int, default=1, metavar="N", help="train each method N times (seeds seed..seed+N-1)")
    p.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="methods trained at the same time, each in its own process (default: one per core on a CPU, 1 on a GPU)",
    )
    p.add_argument(
        "--threads",
        type=int,
        metavar="T",
        help="threads per process (default: cores / jobs for training, all cores for evaluation)",
    )
    p.add_argument(
        "--classifier-weights", metavar="FILE", help="evaluator weights (.safetensors or state dict): skip its training"
    )
    add_launch_args(p)
    p.add_argument(
        "--track", choices=TRACKERS, help="log the run to a tracker (mlflow: $MLFLOW_TRACKING_URI or results/mlflow.db)"
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("score", help="score lesion maps of an external method")
    p.add_argument("--maps", required=True, metavar="FILE.npz", help="one float array per patientId, any resolution")
    _add_config_args(p)
    p.add_argument("--name", default="external", help="method name in the table")
    p.add_argument(
        "--split", choices=["test", "tune", "all"], default="test", help="images scored (default: test split)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_score)

    add_record_commands(sub)
    _add_output_flags(parser)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (exit status 2), like every other bad input."""

    def error(self, message: str) -> NoReturn:
        """Print ``error: <command>: <message>`` and exit with :data:`bench.cli.exits.USAGE`."""
        exits.say(f"error: {self.prog}: {message} (see {self.prog} --help)")
        sys.exit(exits.USAGE)


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    """``--progress`` and ``--quiet`` on every command under ``parser`` (its leaf sub-commands)."""
    commands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if commands:
        for child in {id(p): p for p in commands[0].choices.values()}.values():
            _add_output_flags(child)
        return
    group = parser.add_argument_group("progress output (stderr)")
    group.add_argument(
        "--progress",
        choices=progress.MODES,
        default="auto",
        help="bar: redrawn tqdm bars; plain: whole lines (stage start/end, every 10%% or 30 s, rate, ETA); "
        "none: silent; auto (default): bar on a terminal, plain otherwise",
    )
    group.add_argument("--quiet", action="store_true", help="no progress output (same as --progress none)")


def _progress_mode(args: argparse.Namespace) -> str:
    return "none" if getattr(args, "quiet", False) else getattr(args, "progress", "auto")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a command and return its exit status (:mod:`bench.cli.exits`): user errors as one
    line, and no traceback when interrupted or when the reader of stdout has gone."""
    try:
        with exits.sigterm_as_interrupt():
            try:
                args = build_parser().parse_args(argv)
            except SystemExit as done:  # --help (0) or a usage error (2), already printed
                sys.stdout.flush()
                return exits.OK if done.code is None else done.code if isinstance(done.code, int) else exits.USAGE
            with progress.use_mode(_progress_mode(args)):
                code = args.func(args)
            sys.stdout.flush()  # here, not at exit: a reader that has gone is handled below
            return code
    except BenchError as err:
        exits.say(f"error: {err}")
        return exits.USAGE
    except exits.Terminated:
        exits.say("terminated")
        return exits.TERMINATED
    except KeyboardInterrupt:
        exits.say("interrupted")
        return exits.INTERRUPTED
    except BrokenPipeError:  # the reader of stdout has gone (`| head`): nothing more to say to anyone
        return exits.reader_gone()
    except Exception:  # noqa: BLE001 (anything else: keep the traceback, give it its own status)
        exits.say(traceback.format_exc().rstrip())
        exits.say("error: unexpected error (traceback above); please report it")
        return exits.UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
