"""The README as a newcomer follows it: in a fresh copy of this repository, its ``backprop serve``
runs, then every command of its quick tour and of its training section, as written; each answer the
README shows is checked, and afterwards ``git status`` is clean and the shipped seed unchanged."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, copy_tracked_files, free_port, shipped_files
from tests.system.processes import wait_until

pytestmark = pytest.mark.slow
README = (REPO / "README.md").read_text()


def blocks(section: str) -> list[str]:
    """The ``sh`` code blocks under the README's ``## section``."""
    body = README.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", body, re.S)


def steps(block: str) -> list[tuple[str, list[str]]]:
    """(command, the output lines shown under it) for each command of a block."""
    found: list[tuple[str, list[str]]] = []
    for line in block.replace("\\\n", " ").splitlines():
        if line.startswith("# ") and found:
            found[-1][1].append(line[2:])
        elif line.strip() and not line.startswith("#"):
            found.append((line, []))
    return found


def shown(expected: list[str], output: str) -> bool:
    """Whether ``output`` is what the README shows, where ``...`` stands for anything."""
    pattern = "\n".join(re.escape(line).replace(re.escape("..."), ".*") for line in expected)
    return re.fullmatch(pattern, output.strip(), re.S) is not None


def test_the_tour_shows_real_output_lines():
    tour = steps(blocks("Quick tour")[0])
    assert len(tour) >= 8 and sum(1 for _, out in tour if out) >= 7
    assert shown(['{"a":...,"b":2}'], '{"a":[1, 2],"b":2}\n') and not shown(['{"a":1}'], '{"a":2}')


def test_a_newcomer_follows_the_readme_and_leaves_the_clone_clean(tmp_path, digits_dir):
    clone = copy_tracked_files(tmp_path / "clone")
    git = ["git", "-c", "user.name=newcomer", "-c", "user.email=newcomer@localhost"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "a fresh clone"]):
        subprocess.run([*git, *command], cwd=clone, check=True)
    seed = {path: (clone / "model_store" / path).read_bytes() for path in shipped_files()}
    bin_dir = tmp_path / "bin"  # `backprop` and `python` as a venv would have them
    bin_dir.mkdir()
    # Scripts, not symlinks: a link to a venv's python, outside the venv, is the bare interpreter.
    for name, command in (
        ("backprop", f'{sys.executable} -m service.cli "$@"'),
        ("python", f'{sys.executable} "$@"'),
    ):
        (bin_dir / name).write_text(f"#!/bin/sh\nexec {command}\n")
        (bin_dir / name).chmod(0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPROP_", "PROMETHEUS_"))}
    # The README says where training data comes from: BACKPROP_DATA_DIR (here 500 real digits).
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", BACKPROP_DATA_DIR=str(digits_dir), PYTHONPATH=str(clone)
    )

    serve_line = steps(blocks("Install and run")[0])[-1][0]
    assert serve_line.split("#")[0].split() == ["backprop", "serve"]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [*shlex.split(serve_line.split("#")[0]), "--port", str(port)],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        # Ready, with its training worker counted: what a person sees by the time they have
        # opened a second terminal.
        ready = lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()  # noqa: E731
        wait_until(lambda: ready().get("training_workers") == 1, 60, "serve ready, its worker counted")
        for block in (*blocks("Quick tour"), *blocks("Train"), *blocks("Models in and out")):
            for command, expected in steps(block):
                command = command.replace("localhost:8000", f"localhost:{port}")
                ran = subprocess.run(
                    ["bash", "-c", command],
                    cwd=clone,
                    env={**env, "BACKPROP_PORT": str(port)},
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
                assert ran.returncode == 0, (command, ran.stderr)
                if expected:
                    assert shown(expected, ran.stdout), (command, ran.stdout)
        # The dashboard's "Make default", and the command line training the shipped model's name.
        made = requests.put(f"http://127.0.0.1:{port}/models/digits/default", json={"version": 1}, timeout=30)
        assert made.ok, made.text
        argv = ["backprop", "train", "--model", "mnist", "--set-default", "--epochs", "1", "--hidden", "16"]
        subprocess.run(argv, cwd=clone, env=env, check=True, capture_output=True, timeout=300)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
    assert (clone / "model_store" / "mnist" / "v2.npz").is_file()  # the user's work is there ...
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True)
    assert status.stdout == ""  # ... and git sees none of it
    assert {path: (clone / "model_store" / path).read_bytes() for path in seed} == seed
    # What the tests and the image take from this folder is still the seed alone.
    assert sorted(Path(p) for p in seed) == shipped_files()
