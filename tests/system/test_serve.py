"""``backprop serve`` refuses what it cannot run before it says "serving on", and touches nothing of
an instance already running: real processes, real ports."""

import os
import socket
import subprocess
import sys

import pytest
import requests

from tests.conftest import free_port
from tests.system.processes import Service, wait_until


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _clean_env(tmp_path, **variables) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPROP_", "PROMETHEUS_"))}
    env.update({"BACKPROP_STATE_DIR": str(tmp_path / "var"), **variables})
    return env


def test_a_port_in_use_is_said_before_serving_on(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve(_clean_env(tmp_path), "--port", str(port))
    assert result.returncode == 1
    assert result.stderr == f"backprop: port {port} on 127.0.0.1 is in use; set BACKPROP_PORT or --port\n"


def test_the_http_port_taken_for_grpc_too_is_said_before_serving_on(tmp_path):
    result = _serve(_clean_env(tmp_path), "--port", "8001")  # gRPC's default port
    assert result.returncode == 1
    assert result.stderr == (
        "backprop: BACKPROP_GRPC_PORT is the HTTP port, 8001; give gRPC another (0 turns it off)\n"
    )
    assert not (tmp_path / "var").exists()


def test_a_state_folder_that_cannot_be_used_is_said_before_serving_on(tmp_path):
    (tmp_path / "a-file").write_text("")
    for folder, why in (("a-file", "it is a file, not a folder"), ("a-file/var", "Not a directory")):
        result = _serve(_clean_env(tmp_path, BACKPROP_STATE_DIR=str(tmp_path / folder)), "--port", "8123")
        assert result.returncode == 1
        assert result.stderr == (
            f"backprop: the state folder {tmp_path / folder} cannot be used ({why}); "
            "point BACKPROP_STATE_DIR at a folder this user can write\n"
        )


@pytest.mark.slow
def test_a_second_serve_on_the_same_state_folder_refuses_and_harms_nothing(tmp_path, store_dir):
    first = Service(tmp_path, worker=False, model_store=store_dir)
    try:
        first.start()
        requests.post(f"{first.url}/predict", json={"pixels": [0] * 784}, timeout=10)  # counted
        metrics = requests.get(f"{first.url}/metrics", timeout=10).text
        # gunicorn opens its control socket after spawning the pool, which can be after the
        # first worker already answers: the second serve must find it there, and leave it.
        control = tmp_path / "var" / "gunicorn.ctl"
        wait_until(control.exists, 10, "the first serve's control socket")
        second = _serve({**first.env, "BACKPROP_PORT": str(free_port())})
        assert second.returncode == 1
        assert second.stderr.startswith(f"backprop: another backprop serve (pid {first.proc.pid}) is running")
        assert "serving on" not in second.stderr
        assert control.exists()
        after = requests.get(f"{first.url}/metrics", timeout=10).text
        assert after and 'endpoint="/predict"' in after and len(after) >= len(metrics) // 2
        assert requests.get(f"{first.url}/readyz", timeout=10).ok
    finally:
        first.close()


@pytest.mark.slow
def test_host_port_and_workers_flags_win_over_the_environment(tmp_path, store_dir):
    port = free_port()
    service = Service(tmp_path, worker=False, model_store=store_dir, expensive_workers=3)
    service.command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    service.url = f"http://127.0.0.1:{port}"
    try:
        service.start()
        assert f"serving on http://127.0.0.1:{port}" in service.log()
        # one cheap worker (not the environment's two), and the expensive pool's three (which may
        # still be starting: readiness is the cheap pool's)
        wait_until(lambda: service.log().count("Booting worker") >= 1 + 3, 30, "four workers booted")
        assert service.log().count("Booting worker") == 1 + 3
    finally:
        service.close()


def test_bad_flags_are_one_sentence(tmp_path):
    result = _serve(_clean_env(tmp_path), "--port", "abc")
    assert result.returncode == 2 and "--port: must be a whole number, got 'abc'" in result.stderr
    assert "Traceback" not in result.stderr
