"""Only the modules that serve HTTP import Flask: the engine, the store, the queue, the supervisor,
the front and the gunicorn configuration stay usable (and quick to import) without it."""

import subprocess
import sys

from tests.conftest import REPO

WITHOUT_FLASK = [
    "service",
    "service.nn",
    "service.data",
    "service.training",
    "service.store",
    "service.registry",
    "service.images",
    "service.explaining",
    "service.jobs.queue",
    "service.jobs.worker",
    "service.jobs.runner",
    "service.jobs.transitions",
    "service.jobs.records_sqlite",
    "service.jobs.records_redis",
    "service.serve",
    "service.front",
    "service.wire",
    "service.priority",
    "service.gunicorn_conf",
    "service.gunicorn_worker",
    "service.client",
    "service.cli",
]

CHECK = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
    if "flask" in sys.modules:
        sys.exit(f"importing {name} imported Flask")
"""


def test_only_http_modules_import_flask(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "BACKPROP_STATE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", CHECK, *WITHOUT_FLASK], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
