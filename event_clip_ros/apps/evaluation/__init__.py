"""Evaluation of the detector on recorded bags (ROS-free): ground truth, metrics, plots, report.

``event-clip evaluate`` runs :func:`.offline.evaluate_bag`: the bag's event topic through the
node's own :class:`~event_clip_ros.apps.detector.Detector`, matched against a ground truth
(:mod:`.sources`, :mod:`.truth`), scored (:mod:`.scoring`, :mod:`.metrics`) and written
(:mod:`.report`). ``evaluate --live`` scores the node's published results with the same code
(:mod:`.live`). The modules are imported one by one (the package imports nothing, so that
ground truth and bag access stay free of torch).
"""
