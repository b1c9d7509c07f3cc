import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings


def test_defaults_match_the_readme():
    settings = Settings()
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 2)
    assert settings.model_store == Path("model_store") and settings.redis_url is None
    assert settings.api_token is None and settings.job_concurrency == 1


def test_environment_is_read_and_typed(monkeypatch):
    monkeypatch.setenv("BACKPROP_PORT", "9000")
    monkeypatch.setenv("BACKPROP_DATASET_MIRRORS", "http://a/, http://b/")
    monkeypatch.setenv("BACKPROP_ALLOW_INSECURE", "1")
    settings = Settings()
    assert settings.port == 9000 and settings.allow_insecure is True
    assert settings.dataset_mirrors == ("http://a/", "http://b/")


def test_bad_values_are_refused(monkeypatch):
    monkeypatch.setenv("BACKPROP_PORT", "99999")
    with pytest.raises(ValidationError, match="port"):
        Settings()


@pytest.mark.parametrize("token", ["", " ", "short", "x" * 15])
def test_an_empty_or_short_token_is_a_configuration_error(token):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(api_token=token)
    assert Settings(api_token="x" * 16).api_token is not None


def test_gunicorn_workers_suit_what_faces_the_clients():
    # Behind nginx whole requests arrive one per connection; facing clients, threads hold keep-alive.
    behind_nginx = Settings(front="nginx", threads=8).gunicorn_worker
    assert behind_nginx == ("service.gunicorn_worker.WarmFirstWorker", 1)
    assert Settings(front="none", threads=8).gunicorn_worker == ("gthread", 8)


def test_the_gunicorn_master_loads_no_numpy_before_it_sets_the_blas_threads():
    # OpenBLAS reads OPENBLAS_NUM_THREADS once, when NumPy loads it: the configuration sets it, so
    # importing the configuration must not load NumPy (nor Flask, which the master never needs).
    import subprocess
    import sys

    code = "import sys, service.gunicorn_conf; print('numpy' in sys.modules, 'flask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_the_gunicorn_master_imports_the_app_once_ready_with_blas_on_one_thread_and_no_thread_started():
    # Workers fork from the master with the app's modules loaded; threads would not survive the fork.
    # Huey (with Redis' client) and requests wait until a process queues a job or downloads data.
    import json
    import subprocess
    import sys

    code = """if True:
        import json, sys, threading, service.gunicorn_conf as conf
        conf.when_ready(None)
        from threadpoolctl import threadpool_info
        blas = sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        loaded = sorted({"service.app", "flask", "numpy", "huey", "redis", "requests"} & set(sys.modules))
        print(json.dumps([loaded, blas, threading.active_count()]))
    """
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert json.loads(out.stdout) == [["flask", "numpy", "service.app"], [1], 1]


def test_the_developers_environment_stays_out_of_the_tests():
    # Run with BACKPROP_PORT=1 BACKPROP_API_TOKEN=... set: the defaults still hold here.
    assert not [name for name in os.environ if name.startswith("BACKPROP_") and "_TEST_" not in name]
    assert Settings().port == 8000 and Settings().api_token is None
