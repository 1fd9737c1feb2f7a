"""Fine-tuning f_E with L_pred, and the zero-shot / few-shot / fine-tuned comparison: the library side of
``training/finetune.py``.

Method (Jeong et al., arXiv 2412.03093; the official ``finetune.py`` and ``trainer_ft.py``, paper-method.md 1.5-1.6)
    f_E starts from a pre-trained event-CLIP checkpoint (ours, or the paper's ``vitb.pt`` / ``vitl.pt``) and
    is the only trainable part; CLIP's f_I and f_T stay frozen. The loss is
    ``L_pred = mean_i (1 - cos(f_E(x_i), t_{y_i}))``, ``t_c`` the f_T embedding of class ``c``'s prompt (the
    dataset's official single prompt). The official fine-tune code also computes L_ct, L_kl and L_zs, for
    logging only; they are left out (no paired images are loaded). Defaults are the official fine-tune
    hyperparameters: AdamW (0.9, 0.999), weight decay 0.03 on every trainable parameter, ``base_lr`` 5e-6
    times global batch / 256, 100 epochs of which 40 linear warmup, then half-cosine to 0 (per optimiser
    step), fp32, per-device batch ``20 k`` for ``k`` shots (the official 20 / 40 / 100 for 1 / 2 / 5 shots:
    all shots of the 20 held-out classes in one batch; capped at the training items per rank) and 4 for all
    data.

Protocol
    * Target classes (``classes``): ``"held-out"`` limits training and evaluation items to the split's
      ``unseen`` classes (the official k-shot protocol: the 20 bird classes of N-ImageNet); ``"all"`` trains
      and evaluates on every class. Default: held-out for k shots when the data has a class split
      (``data.split``), else all.
    * Ranking (the headline): every item is ranked among **all** the dataset's class prompts, as the official
      ``get_acc`` does (argmax over all 100 N-ImageNet prompts, also for the 20 held-out classes), so a
      held-out item can be mistaken for a seen class. With held-out targets, ``nway`` reports the ranking
      among the targets only (20-way on N-ImageNet): easier, and not comparable with the paper.
    * Shots (``shots``): ``k`` training items per class drawn by
      :func:`~event_clip_ros.train.data.kshot_indices` from ``kshot_seed`` (an official k-shot list holds
      exactly ``k`` files per class and is taken whole), ``"all"`` training items of those classes, or ``0``
      (zero-shot evaluation only, ``--eval-only``; no training list needed). The subset is written to
      ``kshot.json`` and into the exported checkpoint's training record.
    * Model selection (``runtime.selection``) never uses the test split: with a validation split (synthetic:
      its own instances; real data: ``data.val_list``, which must not share a file with the test list) the
      first best validation top-1 is exported as ``best.safetensors``; without one (the official lists have
      none) the last epoch is, which is what the official ``best.pt`` is (it is rewritten every epoch).
    * ``eval.json`` compares, on the same items of the ``test`` split (``data.test_list``, required):
      ``zero_shot`` (the starting checkpoint), ``few_shot`` (the starting checkpoint with
      :class:`~event_clip_ros.model.few_shot.FewShotClassifier` prototypes of the same k-shot items over the
      text weights of all classes, no training) and, after training, ``fine_tuned`` (``best.safetensors``);
      each with top-1, top-5, mean per-class and per-class accuracy, plus ``nway``.

Frames and augmentation
    ``frame="dataset"`` (default) builds every compared method's frames with the dataset's official
    representation (:func:`~event_clip_ros.train.data.recommended_frame_config`: N-ImageNet "official",
    N-Caltech101 / N-MNIST "official" with count clamps 20 / 10, synthetic "paper") and records it in the
    exported checkpoint, so inference builds the frames f_E was fine-tuned on; ``"checkpoint"`` keeps the
    starting checkpoint's. Training windows get the dataset's official event augmentation and, with
    ``data.frame_augment``, N-ImageNet's official RandomResizedCrop + flip. The official N-Caltech101 /
    N-MNIST loaders apply RandAugment to frames instead, which is not implemented.

=================  ==============================================================
module             what it holds
=================  ==============================================================
``config``         :class:`FinetuneConfig` and its sections, presets, ``--set``
``data``           the splits, candidate classes, k-shot subset, batch size
``evaluation``     zero-shot, few-shot-prototype and per-class accuracy reports
``run``            :func:`run_finetune`, :func:`run_eval_only`
``cli``            the command line (``event-clip-finetune``, ``training/finetune.py``)
=================  ==============================================================
"""

from .config import DATA_KINDS, FinetuneConfig, load_config, load_preset, parse_override
from .data import FinetuneData, build_data
from .run import BEST_NAME, CONFIG_NAME, EVAL_NAME, KSHOT_NAME, run_eval_only, run_finetune

__all__ = [
    "BEST_NAME", "CONFIG_NAME", "DATA_KINDS", "EVAL_NAME", "FinetuneConfig", "FinetuneData", "KSHOT_NAME",
    "build_data", "load_config", "load_preset", "parse_override", "run_eval_only", "run_finetune",
]
