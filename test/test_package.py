"""The repo root is a valid ament_python package: package.xml, setup.py and a colcon build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "event_clip_ros"

EXEC_DEPENDS = {
    "rclpy", "std_msgs", "sensor_msgs", "diagnostic_msgs", "vision_msgs", "event_camera_msgs",
    "python3-numpy", "python3-numba", "python3-opencv", "python3-yaml", "python3-tqdm",
    "python3-matplotlib", "python3-pytorch",
}


@pytest.fixture(scope="module")
def distribution():
    """The setuptools Distribution setup.py describes (run from the repo root, nothing built)."""
    from distutils.core import run_setup

    import setuptools  # noqa: F401  (makes distutils the one setuptools ships)

    cwd = os.getcwd()
    os.chdir(REPO_ROOT)
    try:
        return run_setup("setup.py", stop_after="init")
    finally:
        os.chdir(cwd)


def test_package_xml():
    pkg = parse_package(REPO_ROOT / "package.xml")
    pkg.validate()
    assert (pkg.name, pkg.package_format, pkg.version) == (PACKAGE, 3, "0.1.0")
    assert [str(lic) for lic in pkg.licenses] == ["Apache-2.0"]
    assert pkg.get_build_type() == "ament_python"
    assert [d.name for d in pkg.buildtool_depends] == ["ament_python"]
    assert EXEC_DEPENDS <= {d.name for d in pkg.exec_depends}
    assert "python3-pytest" in {d.name for d in pkg.test_depends}


def test_setup_py_matches_package_xml(distribution):
    pkg = parse_package(REPO_ROOT / "package.xml")
    assert (distribution.get_name(), distribution.get_version()) == (pkg.name, pkg.version)
    assert distribution.get_license() == str(pkg.licenses[0])
    assert PACKAGE in distribution.packages
    assert not any(p == "test" or p.startswith("test.") for p in distribution.packages)


def test_setup_py_data_files_exist(distribution):
    installed = {}
    for target, sources in distribution.data_files:
        for source in sources:
            assert (REPO_ROOT / source).is_file(), f"data_files entry {source} does not exist"
            installed[f"{target}/{Path(source).name}"] = source
    assert installed[f"share/ament_index/resource_index/packages/{PACKAGE}"] == f"resource/{PACKAGE}"
    assert installed[f"share/{PACKAGE}/package.xml"] == "package.xml"
    targets = {target for target, _ in distribution.data_files}
    assert {f"share/{PACKAGE}/launch", f"share/{PACKAGE}/config"} <= targets
    # the installed training command lines find their presets and the split configs these name
    assert installed[f"share/{PACKAGE}/training/presets/toy.yaml"] == "training/presets/toy.yaml"
    assert installed[f"share/{PACKAGE}/training/presets/finetune/synthetic.yaml"] == "training/presets/finetune/synthetic.yaml"
    assert installed[f"share/{PACKAGE}/training/configs/synthetic_glyphs_split.yaml"] == "training/configs/synthetic_glyphs_split.yaml"


def test_console_scripts(distribution):
    scripts = distribution.entry_points["console_scripts"]
    assert "event-clip = event_clip_ros.cli:main" in scripts
    assert "event-clip-pretrain = event_clip_ros.train.pretrain.cli:main" in scripts
    assert "event-clip-finetune = event_clip_ros.train.finetune.cli:main" in scripts
    for spec in scripts:
        module, func = spec.split("=")[1].strip().split(":")
        assert callable(getattr(__import__(module, fromlist=[func]), func)), spec


def test_setup_cfg_installs_executables_where_ros2_run_looks():
    from configparser import ConfigParser

    cfg = ConfigParser()
    cfg.read(REPO_ROOT / "setup.cfg")
    assert cfg["develop"]["script_dir"] == f"$base/lib/{PACKAGE}"
    assert cfg["install"]["install_scripts"] == f"$base/lib/{PACKAGE}"


@pytest.mark.slow
def test_colcon_build(tmp_path):
    colcon = shutil.which("colcon", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    assert colcon, "colcon is missing: run scripts/setup_env.sh (requirements-dev.txt installs it)"
    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(filter(None, [sys.prefix, env.get("AMENT_PREFIX_PATH")]))
    cmd = [colcon, "--log-base", "tmp/log", "build", "--base-paths", str(REPO_ROOT),
           "--build-base", "tmp/build", "--install-base", "tmp/install", "--event-handlers", "console_direct-"]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"colcon build failed\n{result.stdout}\n{result.stderr}"
    assert f"Finished <<< {PACKAGE}" in result.stdout
    install = tmp_path / "tmp" / "install"
    assert [p.name for p in install.iterdir() if p.is_dir()] == [PACKAGE]  # msgs/ has COLCON_IGNORE

    prefix = install / PACKAGE
    script = prefix / "lib" / PACKAGE / "event-clip"
    assert os.access(script, os.X_OK)
    share = prefix / "share"
    assert (share / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()
    assert (share / PACKAGE / "package.xml").read_bytes() == (REPO_ROOT / "package.xml").read_bytes()
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert (site / PACKAGE / "events" / "types.py").is_file()

    # The installed executable runs from the installed copy of the package.
    run_env = dict(env, PYTHONPATH=str(site))
    where = subprocess.run([sys.executable, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"],
                           cwd=tmp_path, env=run_env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(site)
    helped = subprocess.run([str(script), "--help"], cwd=tmp_path, env=run_env, capture_output=True, text=True)
    assert helped.returncode == 0, helped.stderr
    assert "inspect" in helped.stdout
    # the training command lines run from the install too, with the presets installed beside it
    pretrain = prefix / "lib" / PACKAGE / "event-clip-pretrain"
    helped = subprocess.run([str(pretrain), "--help"], cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: event-clip-pretrain") and "presets: toy, vitb32-nimagenet" in helped.stdout
    assert (share / PACKAGE / "training" / "configs" / "synthetic_glyphs_split.yaml").is_file()
