"""Pre-train the event encoder f_E against frozen CLIP (Jeong et al., arXiv 2412.03093).

f_E starts as a copy of CLIP's image tower and learns to embed event frames where
CLIP embeds the paired images (L_ct, L_kl) while keeping CLIP's zero-shot
predictions (L_zs, with the seen classes' prompts), so the held-out classes can
be recognised from events by their text prompts alone. Presets live in
training/presets/ (--preset NAME); any other YAML file of the same layout works
with --config. Run it as a plain process or under torchrun (DDP; rank 0 writes):

  python training/pretrain.py --preset toy --out /tmp/toy              # CPU, minutes, no download
  python training/pretrain.py --preset toy --out /tmp/toy --resume auto --ablations
  python training/pretrain.py --preset toy --seeds 3 --splits 2 --ablations --out /tmp/sweep   # ~25 min
  torchrun --nproc_per_node 8 training/pretrain.py --preset vitb32-nimagenet --out runs/vitb32 \\
      --set data.train_list=... --set data.val_list=... --set data.labels_file=...

Outputs in --out: best.safetensors (the selected EventClip checkpoint: best
validation top-1 on held-out items of the seen classes, or the last epoch with
runtime.selection=last or without a validation set; the test list never
selects), final.safetensors, <name>_report.json/.md (zero-shot accuracy of f_I,
f_E before and after; headline: held-out items ranked among all class prompts,
the official protocol; N-way among the held-out prompts as a secondary column),
metrics.jsonl/.csv, tensorboard/, checkpoints/ (resumable training states),
config.yaml.

With --seeds and/or --splits it sweeps the config instead: one run per class split
and seed in <out>/runs/split<j>-seed<i>/ (split 0 is the config's data.split, the
others hold out as many digits / letters as it, drawn among classes not held out
before; seed i adds i to runtime.seed and 3 i to data.seed), the toy teacher
trained once and shared (--teacher per-seed: one per seed), then <name>_sweep.md
(mean ± std (min-max) per configuration), <name>_sweep.png, <name>_sweep.json and
<name>_sweep_runs.csv (the per-run rows). --resume auto keeps completed runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..presets import program_name, training_dir
from .config import ConfigError, PretrainConfig, load_config
from .run import RunOptions, run
from .sweep import SweepOptions, cell, sweep

PRESET_DIR = training_dir() / "presets"
PROG = program_name("pretrain.py")


def presets() -> list[str]:
    """Names of the YAML presets in training/presets/."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        epilog=f"presets: {', '.join(presets())}. Keys for --set are the YAML keys joined by dots "
               "(model.arch, data.split, loss.tau_i, optim.base_lr, optim.epochs, runtime.workers, teacher.steps, ...); "
               "values are YAML (null, true, 1e-4, '[a, b]').",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="a preset name from training/presets/")
    source.add_argument("--config", type=Path, help="a YAML config file")
    parser.add_argument("--out", type=Path, help="output folder (default: out/pretrain/<name>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value (repeatable)")
    parser.add_argument("--resume", choices=["auto"], help="continue every stage from the newest checkpoint in --out")
    parser.add_argument("--epochs", type=int, help="event pre-training epochs (optim.epochs)")
    parser.add_argument("--max-steps", type=int, help="stop event pre-training after N optimiser steps in total "
                        "(a checkpoint is written; continue with --resume auto)")
    parser.add_argument("--seed", type=int, help="runtime.seed")
    parser.add_argument("--threads", help="torch CPU threads: a number, or auto (the cores the load average leaves "
                        "free; 1 on a machine loaded beyond its cores) (runtime.threads)")
    parser.add_argument("--ablations", action="store_true",
                        help="also pre-train without L_zs and without L_kl (the paper's Figure 4) and report them")
    sweep_group = parser.add_argument_group("sweep (mean and spread over seeds and class splits)")
    sweep_group.add_argument("--seeds", type=int, metavar="N", help="run N seeds (runtime.seed + i, data.seed + 3 i)")
    sweep_group.add_argument("--splits", type=int, metavar="N",
                             help="over N class splits (split 0: data.split; the others drawn)")
    sweep_group.add_argument("--teacher", choices=["shared", "per-seed"], default="shared",
                             help="toy teacher of a sweep: trained once and shared by every run (default), or one per seed")
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> PretrainConfig:
    """The config file of --preset / --config with --set, --epochs and --seed applied."""
    if args.preset is not None:
        path = PRESET_DIR / f"{args.preset}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown preset {args.preset!r}; presets: {', '.join(presets())} (or --config FILE.yaml)")
    else:
        path = args.config
    overrides = list(args.overrides)
    if args.epochs is not None:
        overrides.append(f"optim.epochs={args.epochs}")
    if args.seed is not None:
        overrides.append(f"runtime.seed={args.seed}")
    if args.threads is not None:
        overrides.append(f"runtime.threads={args.threads}")
    return load_config(path, overrides)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("event_clip_ros").setLevel(logging.INFO)  # open_clip narrates every model build at INFO
    try:
        cfg = resolve_config(args)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if args.max_steps is not None and args.max_steps < 1:
        print(f"{PROG}: error: --max-steps must be >= 1", file=sys.stderr)
        return 2
    if args.seeds is not None or args.splits is not None:
        return main_sweep(args, cfg)
    out = args.out if args.out is not None else Path("out") / "pretrain" / cfg.name
    try:
        report = run(cfg, RunOptions(out_dir=out, resume=args.resume, max_steps=args.max_steps, ablations=args.ablations))
    except (ConfigError, FileExistsError) as exc:
        return _error(exc, "run", out)
    if report is not None:
        for row in report["rows"]:
            m = row["metrics"]
            print(f"{row['name']:<60} held-out top-1 among all classes "
                  f"{100 * m.get('unseen_vs_all_top1', float('nan')):5.1f}  "
                  f"(N-way among held-out {100 * m.get('unseen_vs_unseen_top1', float('nan')):5.1f})")
        print(f"report: {out / (cfg.name + '_report.md')}  checkpoint: {out / 'best.safetensors'}")
    return 0


def _error(exc: Exception, what: str, out: Path) -> int:
    """Print a run's or sweep's error; exit status 2 for a configuration error, 1 for an existing output."""
    if isinstance(exc, FileExistsError):
        print(f"{PROG}: error: {exc}. Pass --resume auto to continue (or reuse) the {what} in {out}, "
              "or choose another --out", file=sys.stderr)
        return 1
    print(f"{PROG}: error: {exc}", file=sys.stderr)
    return 2


def main_sweep(args: argparse.Namespace, cfg: PretrainConfig) -> int:
    """--seeds / --splits: the sweep; prints the table."""
    out = args.out if args.out is not None else Path("out") / "pretrain" / f"{cfg.name}_sweep"
    try:
        options = SweepOptions(out_dir=out, seeds=1 if args.seeds is None else args.seeds,
                               splits=1 if args.splits is None else args.splits, ablations=args.ablations,
                               teacher=args.teacher, resume=args.resume, max_steps=args.max_steps)
        summary = sweep(cfg, options)
    except (ConfigError, FileExistsError) as exc:
        return _error(exc, "sweep", out)
    for row in summary["table"]:
        label = row["config"] + (f" ({row['checkpoint']})" if row["checkpoint"] else "")
        print(f"{label:<45} n={row['runs']:<3} held-out among all classes {cell(row['metrics']['unseen_vs_all_top1']):<24} "
              f"N-way {cell(row['metrics']['unseen_vs_unseen_top1'])}")
    print(f"sweep: {out / (cfg.name + '_sweep.md')}  chart: {out / (cfg.name + '_sweep.png')}  "
          f"wall {summary['wall_s']:.0f} s")
    return 0
