"""The installable package (pyproject.toml): a wheel built from the project holds every module and the
demo data, and its console scripts run from an installation that does not see this checkout."""
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {"aioli-train": "main:main", "aioli-prepare": "data.prepare:main", "aioli-fit": "mixing_law_fitting:main",
           "aioli-report": "analysis.report:main"}


def test_pyproject_declares_the_scripts_and_the_requirements():
    project = tomllib.load(open(os.path.join(ROOT, "pyproject.toml"), "rb"))["project"]
    assert project["scripts"] == SCRIPTS
    names = {line.split("#")[0].strip().split("=")[0].split(">")[0].split("<")[0]
             for line in open(os.path.join(ROOT, "requirements.txt")) if line.split("#")[0].strip()}
    declared = {dep.split(">")[0].split("=")[0].split("<")[0] for dep in project["dependencies"]}
    extras = {dep.split(">")[0] for deps in project["optional-dependencies"].values() for dep in deps}
    assert names - {"pytest", "setuptools"} <= declared | extras, "requirements.txt and pyproject.toml disagree"
    assert {"gpu", "dev", "slurm"} <= set(project["optional-dependencies"])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the project (the build writes next to its sources)."""
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md", "main.py", "mixing_law_fitting.py", "errors.py", "options.py",
                 "hub.py"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    for package in ("trainer", "methods", "data", "analysis"):
        shutil.copytree(os.path.join(ROOT, package), src / package, ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = out.glob("*.whl")
    return path


def test_the_wheel_holds_the_modules_and_the_demo_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("main.py", "hub.py", "errors.py", "options.py", "mixing_law_fitting.py", "trainer/sharding.py",
                   "methods/aioli.py", "data/prepare.py", "analysis/report.py", "data/demo/tokenizer.json",
                   "data/demo/corpus/book.jsonl.zst"):
        assert module in names, module
    assert not any(n.startswith("tests/") for n in names)
    (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script, target in SCRIPTS.items():
        assert f"{script} = {target}" in text


def test_installed_console_scripts_run_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    env = dict(os.environ, PYTHONPATH=str(target))
    for script in SCRIPTS:
        run = subprocess.run([str(target / "bin" / script), "--help"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0 and "usage" in run.stdout.lower(), (script, run.stderr[-1000:])
    where = subprocess.run([sys.executable, "-c", "import main, data.demo as d; print(main.__file__, d.CORPUS_DIR)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    module_file, corpus = where.stdout.split()
    assert module_file.startswith(str(target)) and os.path.isfile(os.path.join(corpus, "book.jsonl.zst"))
