"""The API against its own contract: schemathesis generates requests from the live /openapi.json,
valid and invalid, with the token, and runs all its checks on every answer (no 5xx; status codes,
content types, bodies and headers as documented; valid data accepted, invalid data refused;
undeclared methods answered 405 with ``Allow``).

Training is neutralised without weakening the contract: the service runs with no training worker
and room for one queued job, so a valid ``POST /train`` gets 202 once and 429 after (both
documented); nothing trains and nothing is downloaded.

A model file's validity is more than a schema can say (a zip of arrays that agree with a spec), so
the bodies the schema calls valid carry a real, small model file (``_valid_model_files``), and the
others whatever the fuzzer makes of them: uploads add versions, and only the shipped seed must be
left exactly as it was.
"""

import base64
import hashlib
import os
import threading
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.config import ChecksConfig, SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import negative_data_rejection
from schemathesis.transport.serialization import Binary

from tests.conftest import copy_shipped_store, shipped_files
from tests.model_files import good_model
from tests.system.processes import AUTH, Service

pytestmark = pytest.mark.slow

# About 3,300 requests over 42 operations, so that the suite stays in its 10 minutes; set
# BACKPROP_TEST_FUZZ_EXAMPLES for a deeper run (200: about 9,000 requests in 100 s; 1000: about
# 36,000 in 7 min).
EXAMPLES_PER_OPERATION = int(os.environ.get("BACKPROP_TEST_FUZZ_EXAMPLES", "32"))
# Invalid cases add about one request per example. Past a few hundred examples the operations with
# few distinct inputs run out of new ones, so the floor stops growing there.
LEAST_REQUESTS = 40 * min(EXAMPLES_PER_OPERATION, 200)


class Tally:
    """Every request the fuzzer sends and what came back."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.server_errors: list[str] = []
        self.violations: list[str] = []
        self.operations: set[str] = set()

    def hook(self, response: requests.Response, *args, **kwargs) -> None:
        with self.lock:
            self.requests += 1
            if response.status_code >= 500:
                request = response.request
                self.server_errors.append(f"{request.method} {request.url}: {response.text[:200]}")


def _digests(store: Path) -> dict[str, str]:
    """The seed's files: what no request may change."""
    files = [store / relative for relative in shipped_files()]
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()
    }


def _small_default(store: Path, digits_dir: Path) -> None:
    """A small trained model, beside the seed, as the store's default: what the fuzzer checks is the
    contract, not the model, and requests that name none (explanations of 16 images at 512 passes
    each among them) then cost a fraction of what the shipped network's would."""
    from service.data import load_dataset
    from service.store import ModelStore
    from service.training import TrainingConfig, train_and_save

    config = TrainingConfig(hidden=(32,), epochs=2)
    train_and_save(config, load_dataset("mnist", digits_dir), ModelStore(store), "small", make_default=True)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, digits_dir):
    tmp = tmp_path_factory.mktemp("fuzz")
    store = tmp / "store"
    copy_shipped_store(store)
    _small_default(store, digits_dir)
    service = Service(
        tmp,
        worker=False,
        model_store=store,
        max_queued_jobs=1,
        max_job_cost=1e30,  # schema-valid jobs are all acceptable ...
        allow_download=True,  # ... whatever their dataset; no worker runs them
        max_body_mb=4,
        max_batch=64,
        drift=True,  # predictions go through the drift counting too
        capture_fraction=0.5,  # and half of them are kept for corrections
        feedback_per_minute=100_000,  # corrections are stored, not only refused for their rate
    )
    tally = Tally()
    session = requests.Session()
    session.hooks["response"].append(tally.hook)
    try:
        service.start()
        yield service, session, tally, _digests(store)
    finally:
        service.close()


# Invalid data refused for its size is refused too: a request line, headers or a body over the
# front's limits get 414, 431 or 413 (documented), which schemathesis's list of refusals lacks.
REFUSALS = [*ChecksConfig().negative_data_rejection.expected_statuses, "413", "414", "431"]


@pytest.fixture
def live_schema(fuzzed):
    service, *_ = fuzzed
    config = SchemathesisConfig.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}}
    )
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("live_schema")


def _picture(fmt: str):
    """Pictures (any size up to 64x64, any grey levels) encoded as ``fmt``: what image bodies are."""

    def encode(args) -> bytes:
        import io

        import numpy as np
        from PIL import Image

        (width, height), seed = args
        pixels = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format=fmt)
        return out.getvalue()

    sizes = st.tuples(st.integers(1, 64), st.integers(1, 64))
    return st.tuples(sizes, st.integers(0, 2**32 - 1)).map(encode)


schemathesis.openapi.media_type("image/png", _picture("PNG"))
schemathesis.openapi.media_type("image/jpeg", _picture("JPEG"))

_UPLOAD, _LOAD = "/models/{name}/versions", "/v2/repository/models/{name}/load"


@schemathesis.hook
def map_case(context, case):
    """Bodies the schema calls valid, with a real model file (seeded by what the fuzzer drew)."""
    modes = [case.meta.generation.mode, *(c.mode for c in case.meta.components.values())] if case.meta else []
    if not modes or not all(mode.is_positive for mode in modes):
        return case  # a request meant to be refused stays as the fuzzer made it
    seed = int(hashlib.sha256(repr(case.body).encode()).hexdigest()[:8], 16)
    if case.operation.path in (_UPLOAD, _LOAD):
        # Into one model: one the other operations' generated names would hit answers their
        # schema-valid but shapeless infer requests with 400, where an unknown model's is a 404.
        case.path_parameters = {**(case.path_parameters or {}), "name": "fuzzed-uploads"}
    # Binary: schemathesis's own wrapper of bytes, which it checks against a binary string's schema.
    if case.operation.path == _UPLOAD and isinstance(case.body, bytes | str):
        case.body = Binary(good_model(hidden=(4,), seed=seed))
    elif case.operation.path == _UPLOAD and isinstance(case.body, dict) and "file" in case.body:
        case.body = {**case.body, "file": Binary(good_model(hidden=(4,), seed=seed))}
    elif case.operation.path == _LOAD and isinstance(case.body, dict):
        given = dict(case.body.get("parameters") or {})
        parameters = {key: value for key, value in given.items() if not key.startswith("file:")}
        if len(parameters) < len(given):  # files were sent: one, named as the extension names them
            parameters["file:1/model.npz"] = base64.b64encode(good_model(hidden=(4,), seed=seed)).decode()
        if isinstance(parameters.get("config"), str):
            parameters["config"] = "{}"
        case.body = {**case.body, "parameters": parameters}
    return case


def _excluded(case) -> list:
    """Checks that cannot judge this case. schemathesis derives negative multipart uploads from
    positive ones (once their file is a real model) and then cannot say which part it made invalid:
    there, only the answers are checked, not that the request was refused (the refusals of
    multipart uploads are tested in tests/api/test_transfer.py). A query parameter it made up with an
    empty array for a value is never sent (requests writes nothing for it), so the server gets a
    valid request that schemathesis takes for an invalid one."""
    if case.operation.path == _UPLOAD and case.media_type == "multipart/form-data":
        return [negative_data_rejection]
    if any(value == [] for value in (case.query or {}).values()):
        return [negative_data_rejection]
    return []


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_contract(case, fuzzed):
    _, session, tally, _ = fuzzed
    tally.operations.add(case.operation.label)
    try:
        case.call_and_validate(session=session, headers=AUTH, timeout=30, excluded_checks=_excluded(case))
    except FailureGroup as failures:
        tally.violations.append(f"{case.operation.label}: {failures}")
        raise


def test_the_fuzzing_left_the_service_whole(fuzzed, robustness):
    service, _, tally, digests_before = fuzzed
    if not tally.requests:
        pytest.skip("runs after test_every_operation_keeps_its_contract")
    store_changes = sorted(
        set(digests_before.items()) ^ set(_digests(service.store).items()), key=lambda item: item[0]
    )
    robustness.record(
        "fuzzing",
        tool=f"schemathesis {schemathesis.__version__}, all checks",
        operations=len(tally.operations),
        requests=tally.requests,
        server_errors=len(tally.server_errors),
        contract_violations=len(tally.violations),
        store_files_changed=len(store_changes),
    )
    assert tally.requests >= LEAST_REQUESTS
    assert not tally.server_errors, tally.server_errors[:5]
    assert not tally.violations
    assert not store_changes  # a fuzzer with the token deleted or replaced nothing it must not
    assert requests.get(f"{service.url}/readyz", timeout=10).status_code == 200
    assert "Traceback" not in service.log()
