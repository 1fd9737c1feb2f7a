"""Event-encoder pre-training (Jeong et al., arXiv 2412.03093): the library side of ``training/pretrain.py``.

=================  ==============================================================
module             what it holds
=================  ==============================================================
``config``         :class:`PretrainConfig` and its sections, YAML + ``--set`` loading
``data``           seen-class training set, validation / test sets, batching
``step``           :class:`PretrainModule` (f_E + loss), the training step
``evaluation``     zero-shot accuracy on seen and held-out classes
``teacher``        the toy preset's tiny CLIP, trained on glyph images and captions
``report``         the report (JSON, Markdown) and the deviations it lists
``run``            :func:`run`: teacher, baselines, pre-training, ablations, report
``sweep``          :func:`~.sweep.sweep`: a config over seeds x class splits, mean and spread, chart
``cli``            the command line (``event-clip-pretrain``, ``training/pretrain.py``)
=================  ==============================================================
"""

from .config import ConfigError, PretrainConfig, load_config
from .run import ABLATIONS, RunOptions, run

__all__ = ["ABLATIONS", "ConfigError", "PretrainConfig", "RunOptions", "load_config", "run"]
