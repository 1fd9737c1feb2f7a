"""Training datasets: paired events, images and captions, their augmentations and batching.

=================  ==============================================================
module             what it holds
=================  ==============================================================
``sample``         the item contract (:class:`Sample`), keyed seeding, the base class
``synthetic``      :class:`SyntheticGlyphs`: glyphs and shapes in simulated saccades
                   (drawn by :mod:`event_clip_ros.sim`, which the CLI shares)
``paired``         N-ImageNet + ImageNet, N-Caltech101 / N-MNIST list datasets
``labelled``       N-Cars, DVS128 Gesture, N-Caltech101 class folders (no images)
``recommended``    per-dataset official frame settings and augmentation
``augment``        official event augmentations and frame crop + flip
``splits``         held-out class splits by name, k-shot subsets
``subset``         :class:`EpochSubset`: training items that follow the loader's epoch
``collate``        :func:`collate_samples`, DataLoader seeding
=================  ==============================================================
"""

from ...sim.saccades import SaccadeConfig
from .augment import EventAugmentConfig, FrameAugmentConfig, augment_events, augment_frames, random_window
from .collate import collate_samples, seed_worker
from .labelled import DVSGesture, DVSGestureConfig, NCaltech101Folders, NCaltech101FoldersConfig, NCars, NCarsConfig
from .paired import ListPaired, ListPairedConfig, NImageNetConfig, NImageNetPaired
from .recommended import dataset_defaults, recommended_frame_config
from .sample import EventDataset, Sample
from .splits import ClassSplit, kshot_indices, match_classes
from .subset import EpochSubset
from .synthetic import SyntheticConfig, SyntheticGlyphs

__all__ = [
    "DVSGesture", "DVSGestureConfig", "NCaltech101Folders", "NCaltech101FoldersConfig", "NCars", "NCarsConfig",
    "ClassSplit", "EpochSubset", "EventAugmentConfig", "EventDataset", "FrameAugmentConfig", "ListPaired",
    "ListPairedConfig", "NImageNetConfig", "NImageNetPaired", "SaccadeConfig", "Sample", "SyntheticConfig",
    "SyntheticGlyphs", "augment_events", "augment_frames", "collate_samples", "dataset_defaults", "kshot_indices",
    "match_classes", "random_window", "recommended_frame_config", "seed_worker",
]
