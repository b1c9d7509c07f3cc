"""The modules generated from service/grpc/grpc_predict_v2.proto are what its documented command
makes of it now: a change to the .proto without regenerating them fails here."""

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

PROTO = "service/grpc/grpc_predict_v2.proto"
GENERATED = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2_grpc.py")


def test_the_generated_modules_match_the_proto(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools comes with the test extra")
    (tmp_path / "service" / "grpc").mkdir(parents=True)
    shutil.copy(REPO / PROTO, tmp_path / PROTO)
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-I",
        ".",
        "--python_out=.",
        "--grpc_python_out=.",
        PROTO,
    ]
    assert (
        "python -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. \\" in (REPO / PROTO).read_text()
    )
    made = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    for name in GENERATED:
        fresh = (tmp_path / "service" / "grpc" / name).read_text()
        assert fresh == (REPO / "service" / "grpc" / name).read_text(), (
            f"{name} differs: regenerate it ({PROTO})"
        )
