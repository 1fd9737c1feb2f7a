"""Fine-tune the event encoder f_E with L_pred from an event-CLIP checkpoint, or evaluate one without training.

L_pred = mean(1 - cos(f_E(events), f_T(prompt of the label))); f_I and f_T stay frozen, the defaults are
the official fine-tune hyperparameters (paper-method.md 1.6). The selected epoch (best validation top-1
with a validation list, else the last epoch, as the official code) is exported as OUT/best.safetensors,
and OUT/eval.json compares, on the test list (never used for selection), zero-shot and few-shot-prototype
accuracy of the starting checkpoint with the fine-tuned one; every item is ranked among all the dataset's
class prompts (the official protocol), with the N-way figure among the held-out classes beside it. Method and protocol:
event_clip_ros.train.finetune. Runs as a plain process or under torchrun (DDP; rank 0 evaluates and writes).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from ..presets import program_name, training_dir
from .config import DATA_KINDS, FinetuneConfig, load_config, load_preset, parse_override
from .run import EVAL_NAME, run_eval_only, run_finetune

PRESET_DIR = training_dir() / "presets" / "finetune"
PROG = program_name("finetune.py")


def presets() -> list[str]:
    """Names of the presets in training/presets/finetune/."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


EPILOG = f"""\
presets (training/presets/finetune/): {', '.join(presets())}. Without --preset: KIND-Nshot or KIND-all
when it exists, else KIND. Precedence: preset < options < --set. Keys for --set are the YAML keys joined
by dots (shots, classes, kshot_seed, few_shot_alpha, data.split, data.frame_augment, data.seed,
optim.base_lr, optim.epochs, optim.batch_size, optim.warmup_epochs, runtime.device, runtime.workers, ...);
values are YAML (null, true, 1e-4, '[a, b]').

examples:
  # toy: 5 shots of each of the 10 held-out glyph classes (no download), from the toy pre-training
  python training/finetune.py --checkpoint out/pretrain/toy/best.safetensors --data synthetic --shots 5
  # the paper's N-ImageNet 1-shot protocol from the released checkpoint, with the official list files
  python training/finetune.py --checkpoint vitb.pt --data n-imagenet --shots 1 \\
      --lists-dir Event_Modality_Application/configs --path-prefix /mnt/Data_3/event /data/event
  # zero-shot and 5-shot prototypes of a checkpoint, no training (OUT/eval.json)
  python training/finetune.py --checkpoint vitb.pt --data n-imagenet --shots 5 --lists-dir ... --eval-only
  # zero-shot only on your copies of N-Cars / DVS-Gesture / N-Caltech101 (no training list needed)
  python training/finetune.py --checkpoint vitb.pt --preset n-cars --shots 0 --root /data/N-Cars --eval-only
  # all data on 4 GPUs, resumable
  torchrun --nproc_per_node 4 training/finetune.py --checkpoint vitb.pt --data n-imagenet --shots all \\
      --train-list my_train_list_all_cls.txt --lists-dir ... --resume auto
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="starting checkpoint: our .safetensors or the paper's vitb.pt / vitl.pt")
    p.add_argument("--data", choices=DATA_KINDS, metavar="KIND",
                   help=f"dataset kind: {', '.join(DATA_KINDS)} (default: the preset's)")
    p.add_argument("--shots", help="training items per class (1, 2, 5, ...), 'all', or 0 (zero-shot only, --eval-only)")
    p.add_argument("--classes", choices=("held-out", "all"),
                   help="candidate classes: the split's held-out ones (official k-shot protocol) or all "
                        "(default: held-out for k shots when the data has a class split, else all)")
    p.add_argument("--preset", help="a preset name from training/presets/finetune/ or a YAML file")
    p.add_argument("--out", type=Path, help="output folder (default: out/finetune/KIND-Nshot, -eval appended with --eval-only)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one configuration value (repeatable)")
    p.add_argument("--resume", metavar="auto|FILE",
                   help="continue from the newest training state in --out (auto) or from a training-state file")
    p.add_argument("--eval-only", action="store_true",
                   help="no training: zero-shot and few-shot-prototype accuracy of --checkpoint, in OUT/eval.json")
    p.add_argument("--threads", help="torch CPU threads: a number, or auto (the cores the load average leaves free; "
                                     "1 on a machine loaded beyond its cores) (runtime.threads)")
    files = p.add_argument_group("data files (real datasets)")
    files.add_argument("--train-list", help="training list (N-ImageNet: a .npz path per line; N-Caltech101 / N-MNIST: "
                                            "event<TAB>image per line)")
    files.add_argument("--val-list", help="validation list (picks the best epoch; must not share a file with the test "
                                           "list); without one the last epoch is kept, as the official code does")
    files.add_argument("--test-list", help="test list for eval.json (required; never used for selection)")
    files.add_argument("--labels", help="class file: Labels.json (N-ImageNet), EventBind's class JSON or a name list")
    files.add_argument("--lists-dir", help="folder relative list and label paths are taken from (e.g. the official configs/)")
    files.add_argument("--root", help="base of relative entries inside the list files")
    files.add_argument("--path-prefix", nargs=2, metavar=("OLD", "NEW"), help="rewrite a leading OLD of list entries to NEW")
    return p


def preset_path(name: str | None, kind: str | None, shots: str | None) -> Path:
    """The preset file: ``name`` (a preset name or a YAML file), else KIND-Nshot / KIND-all / KIND."""
    if name is not None:
        path = Path(name)
        if path.suffix in (".yaml", ".yml"):
            if not path.is_file():
                raise ValueError(f"preset file {path} does not exist")
            return path
        path = PRESET_DIR / f"{name}.yaml"
        if not path.is_file():
            raise ValueError(f"unknown preset {name!r}; presets: {', '.join(presets())} (or a .yaml file)")
        return path
    if kind is None:
        raise ValueError("give --data KIND or --preset")
    if shots is not None:
        specific = PRESET_DIR / (f"{kind}-all.yaml" if shots == "all" else f"{kind}-{shots}shot.yaml")
        if specific.is_file():
            return specific
    return PRESET_DIR / f"{kind}.yaml"


def resolve_config(args: argparse.Namespace) -> FinetuneConfig:
    """The preset with the options and then --set applied."""
    options: list[tuple[str, Any]] = []
    for key, value in (("checkpoint", args.checkpoint), ("data.kind", args.data), ("classes", args.classes),
                       ("data.train_list", args.train_list), ("data.val_list", args.val_list),
                       ("data.test_list", args.test_list), ("data.labels_file", args.labels),
                       ("data.lists_dir", args.lists_dir), ("data.root", args.root), ("data.path_prefix", args.path_prefix),
                       ("runtime.threads", None if args.threads is None else yaml.safe_load(args.threads))):
        if value is not None:
            options.append((key, value))
    if args.shots is not None:
        options.append(("shots", yaml.safe_load(args.shots)))  # "5" -> 5, "all" stays
    preset = load_preset(preset_path(args.preset, args.data, args.shots))
    return load_config(preset, [*options, *(parse_override(text) for text in args.overrides)])


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The methods of an eval.json report, one line each."""
    lines = [f"{report['data']} {report['split']}: {report['eval_items']} items of {len(report['class_names'])} "
             f"{report['classes']} classes ranked among all {report['ranked_among']}, {report['shots']} shots; "
             f"chance top-1 {report['chance_top1']:.3f}"
             + (f" (N-way {report['chance_top1_nway']:.3f})" if "chance_top1_nway" in report else "")]
    for method in ("zero_shot", "few_shot", "fine_tuned"):
        if method in report:
            r = report[method]
            nway = f"  (N-way top-1 {r['nway']['top1']:.4f})" if "nway" in r else ""
            lines.append(f"  {method:<10}  top-1 {r['top1']:.4f}  top-5 {r['top5']:.4f}  "
                         f"mean per class {r['mean_per_class']:.4f}{nway}")
    if "selection" in report:
        lines.append(f"  selection: {report['selection']['statement']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("event_clip_ros").setLevel(logging.INFO)  # open_clip narrates every model build at INFO
    try:
        cfg = resolve_config(args)
        if cfg.checkpoint is None:
            raise ValueError("--checkpoint is required (our .safetensors or the paper's vitb.pt / vitl.pt)")
        out = args.out if args.out is not None else cfg.default_out(eval_only=args.eval_only)
        report: dict[str, Any] | None  # None on the ranks other than 0
        if args.eval_only:
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                raise ValueError("--eval-only runs in one process: start it without torchrun")
            report = run_eval_only(cfg, out)
        else:
            report = run_finetune(cfg, out, resume=args.resume)
    except ValueError as exc:  # configuration, checkpoint (CheckpointError) and data errors
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except FileExistsError as exc:
        print(f"{PROG}: error: {exc}. Pass --resume auto to continue the run in {out}, or choose another --out",
              file=sys.stderr)
        return 1
    if report is not None:  # rank 0
        print("\n".join(summary_lines(report)))
        print(f"wrote {out / EVAL_NAME}")
    return 0
