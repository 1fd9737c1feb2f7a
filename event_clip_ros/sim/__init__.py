"""Simulated scenes for training and demos, beside the event layer (numpy, OpenCV, numba; no torch).

=================  ==============================================================
module             what it holds
=================  ==============================================================
``glyphs``         glyph / shape rendering and descriptive captions
``saccades``       N-MNIST-like events of a static image (saccades, pixel model)
``glyph_scene``    one glyph instance seen in saccades; a recording of several
``seeding``        :func:`keyed_rng`: generators keyed by (seed, class, instance, ...)
=================  ==============================================================

``event-clip simulate --scene glyphs`` and the training datasets
(:class:`~event_clip_ros.train.data.SyntheticGlyphs`) draw the same instances from here.
"""
