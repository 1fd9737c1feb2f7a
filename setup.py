"""ament_python build of event_clip_ros (also installable with pip: ``pip install -e .``).

The ROS dependencies are declared in package.xml (rosdep keys); ``install_requires``
lists only what pip has to provide. torch/torchvision are pinned in requirements.txt,
not here, so that a system PyTorch (rosdep python3-pytorch) is accepted.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "event_clip_ros"

CONSOLE_SCRIPTS = [
    "event-clip = event_clip_ros.cli:main",
    "detector = event_clip_ros.ros.node:main",
    "event-clip-pretrain = event_clip_ros.train.pretrain.cli:main",
    "event-clip-finetune = event_clip_ros.train.finetune.cli:main",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    # open_clip configurations of the project's architectures (EventCLIP-Tiny, EventCLIP-Toy48): a copying
    # install (colcon build, pip install .) needs them beside the code.
    package_data={f"{PACKAGE}.model": ["model_configs/*.json"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", sorted(glob("launch/*.launch.py"))),
        (f"share/{PACKAGE}/config", sorted(glob("config/*.yaml")) + sorted(glob("config/*.txt")) + sorted(glob("config/*.xml"))),
        (f"share/{PACKAGE}/models", sorted(glob("models/*.safetensors"))),
        # the training presets and the split configs they name (../configs/...), found by the installed
        # event-clip-pretrain / event-clip-finetune (event_clip_ros/train/presets.py)
        (f"share/{PACKAGE}/training/presets", sorted(glob("training/presets/*.yaml"))),
        (f"share/{PACKAGE}/training/presets/finetune", sorted(glob("training/presets/finetune/*.yaml"))),
        (f"share/{PACKAGE}/training/configs", sorted(glob("training/configs/*.yaml"))),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.26",
        "numba>=0.60",
        "opencv-python-headless>=4.8",
        "PyYAML>=6.0",
        "tqdm>=4.66",
        "matplotlib>=3.8",
        "torch",
        "open_clip_torch>=3.0",
        "safetensors>=0.4",
        "evt3>=0.4",
        "rosbags>=0.11",
        "dv-processing>=2.0",
    ],
    # The onnxruntime backend (event-clip export --onnx; backend: onnxruntime). onnxruntime-gpu (CUDA,
    # TensorRT providers) can stand in for onnxruntime.
    extras_require={"test": ["pytest>=8"], "onnx": ["onnx>=1.16", "onnxruntime>=1.18"]},
    zip_safe=True,
    maintainer="event_clip_ros developers",
    maintainer_email="dev@event-clip-ros.org",
    description="Event-camera streams to frames for a CLIP-based encoder, as a ROS 2 package.",
    license="Apache-2.0",
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
