"""``--ground-truth SOURCE``: the one place a ground-truth source is named and loaded.

================== ==========================================================================
SOURCE             ground truth
================== ==========================================================================
``label:NAME``     NAME for the whole bag
``topic:/T``       std_msgs/String label topic /T in the bag (ROS clock: log times)
``ucf:FILE``       UCF-Crime style temporal annotations (frames at ``fps`` from the first event)
``FILE.csv``       time ranges (``t_start_us,t_end_us,label`` sensor clock or
                   ``stamp_start_ns,stamp_end_ns,label`` ROS clock) or ``window,label``
================== ==========================================================================
"""

from __future__ import annotations

from ...events.readers import open_events
from .bag_input import BagTopics, read_label_messages
from .truth import GroundTruth, GroundTruthError, WholeLabel, load_truth_csv, load_ucf_annotations, ranges_from_label_messages

SOURCE_HELP = ("label:NAME (whole bag) | topic:/TOPIC (std_msgs/String labels in the bag) | "
               "ucf:FILE (UCF-Crime style temporal annotations) | FILE.csv (t_start_us,t_end_us,label; "
               "stamp_start_ns,stamp_end_ns,label; or window,label)")


def first_event_ns(bag: BagTopics) -> int:
    """Sensor time of the bag's first event, ns (the origin of UCF-style frame numbers)."""
    with open_events(bag.path, topic=bag.event_topic) as reader:
        for chunk in reader.chunks():
            if chunk.size:
                return int(chunk["t"][0]) * 1000
    raise GroundTruthError(f"{bag.path}: no events on {bag.event_topic}")


def load_ground_truth(spec: str, bag: BagTopics, fps: float = 30.0) -> GroundTruth:
    """The ground truth SOURCE names (see module doc); GroundTruthError / EventFileError say what is wrong."""
    kind, sep, value = spec.partition(":")
    if sep and kind == "label":
        return WholeLabel(value.strip())
    if sep and kind == "topic":
        return ranges_from_label_messages(read_label_messages(bag, value), bag.end_ns + 1, f"topic {value}")
    if sep and kind == "ucf":
        return load_ucf_annotations(value, str(bag.path), fps, first_event_ns(bag))
    return load_truth_csv(spec)
