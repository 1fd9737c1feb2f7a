"""Video input (ROS-free): streaming reading, the paper's frame-difference event frames (optionally as
10 crops), simulated event streams, anomaly scores of video segments and their UCF-Crime evaluation."""
