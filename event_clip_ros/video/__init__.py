"""Video input (ROS-free): streaming reading, the paper's frame-difference event frames (optionally as
10 crops) and simulated event streams. Scoring videos is an application (``apps.video_anomaly``), their
UCF-Crime evaluation sits with the other evaluation code (``apps.evaluation.ucf``)."""
