"""The picture for people (event_clip_ros.events.view): polarity colours, robust scaling, on a real sensor."""

from __future__ import annotations

import numpy as np
import pytest
from real_recordings import RECORDINGS, needs_data, pixel_counts, recording

from event_clip_ros.events.frames import FrameConfig, build_frame, frame_to_uint8
from event_clip_ros.events.types import SensorSize, make_events
from event_clip_ros.events.view import ViewConfig, build_view, polarity_counts

WHITE = np.array([255, 255, 255])


def test_colours_mixing_and_scaling_follow_the_config():
    size = SensorSize(4, 2)
    # pixel (0,0): 1 ON; (1,0): 1 OFF; (2,0): 1 ON + 1 OFF; (3,0): 100 ON (a hot pixel)
    xs = [0, 1, 2, 2] + [3] * 100
    events = make_events(np.arange(len(xs)), xs, np.zeros(len(xs)), [1, 0, 1, 0] + [1] * 100)
    config = ViewConfig(percentile=50.0, gamma=1.0, on_rgb=(0, 0, 255), off_rgb=(255, 0, 0), background_rgb=(255, 255, 255))
    img = build_view(events, size, config)
    assert img.shape == (2, 4, 3) and img.dtype == np.uint8
    # the median of the active pixels' counts (1, 1, 2, 100) is 1.5: one event shows at 2/3 strength, two and more at full
    assert img[0, 0].tolist() == [85, 85, 255] and img[0, 1].tolist() == [255, 85, 85]
    assert img[0, 2].tolist() == [128, 0, 128]  # half ON, half OFF, full strength
    assert img[0, 3].tolist() == [0, 0, 255]  # the hot pixel saturates; it does not dim the others
    assert (img[1] == WHITE).all()
    assert (build_view(events[:0], size) == WHITE).all()  # an empty window: background only
    with pytest.raises(ValueError, match="outside"):
        build_view(events, SensorSize(3, 2))
    with pytest.raises(ValueError, match="percentile"):
        ViewConfig(percentile=0.0)


def test_resizing_puts_events_where_the_model_frame_puts_them():
    size = SensorSize(64, 48)
    rng = np.random.default_rng(0)
    events = make_events(np.arange(500), rng.integers(0, 64, 500), rng.integers(0, 48, 500), rng.integers(0, 2, 500))
    on, off = polarity_counts(events, size, (20, 30))
    model = build_frame(events, size, FrameConfig(out_size=(20, 30)))
    assert np.array_equal((on + off) > 0, model > 0)
    assert (on + off).sum() == 500
    assert build_view(events, size, ViewConfig(out_size=(20, 30))).shape == (20, 30, 3)


@needs_data
@pytest.mark.parametrize("name", list(RECORDINGS))
def test_a_real_sensor_window_reads_well_in_the_view_and_not_in_the_model_frame(name):
    events, size = recording(name)
    window = events[events["t"] < events["t"][0] + 20_000]
    counts = pixel_counts(window, size)
    active = counts > 0
    model = frame_to_uint8(build_frame(window, size, FrameConfig(out_size=None)), FrameConfig())
    view = build_view(window, size)
    contrast = 255 - view.min(axis=2).astype(int)  # how far from the white background
    # the model frame: the busiest pixel sets the scale, the typical active pixel is nearly black (< 10% of 255)
    assert np.median(model[active]) < 0.1 * 255
    # the view: the typical active pixel stands out several times more, every active pixel shows, the rest is white
    assert np.median(contrast[active]) > max(80, 5 * np.median(model[active]))
    assert contrast[active].min() >= 20 and (view[~active] == WHITE).all()
    # polarity: ON-only pixels are blue, OFF-only red
    on, off = polarity_counts(window, size)
    assert (view[(on > 0) & (off == 0)][:, 2] > view[(on > 0) & (off == 0)][:, 0]).all()
    assert (view[(off > 0) & (on == 0)][:, 0] > view[(off > 0) & (on == 0)][:, 2]).all()
