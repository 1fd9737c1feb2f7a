"""Video input (ROS-free): streaming reading, the paper's frame-difference event frames,
simulated event streams, and anomaly scores of video segments."""
