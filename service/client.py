"""A small Python client for backprop-service.

    from service.client import Client
    client = Client("http://127.0.0.1:8000", token="...")
    client.predict(pixels).label                        # one image: 784 values or a 28x28 array
    client.predict(batch).labels                        # a list of images or an (N, 784) array
    job = client.train(dataset="mnist", epochs=10, model="digits")
    client.wait(job["id"], progress=print)             # the finished job record
    client.upload("model.npz", "digits")               # a model trained elsewhere, as a new version
    client.download("digits", 3)                       # a version's .npz bytes (onnx=True: ONNX)

Errors raise ``ApiError`` subclasses carrying the server's status, code, message and details.
uint8 NumPy arrays go as raw bytes (the fastest path); everything else as JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests


class ApiError(Exception):
    """An error answer from the service: ``{"error": {"code", "message", "details"}}``."""

    def __init__(self, status: int, code: str, message: str, details: list | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or []


class InvalidRequest(ApiError):
    """400/422: the request did not fit the API; ``details`` name the field and index."""


class Unauthorized(ApiError):
    """401: a model-changing call without the right bearer token."""


class NotFound(ApiError):
    """404: no such model, version or job."""


class Conflict(ApiError):
    """409: e.g. deleting a default version, or cancelling a finished job."""


class ServerError(ApiError):
    """5xx: the service (or its queue) failed; retrying later may help."""


class Unreachable(ApiError):
    """No answer at all (status 0): nothing listens at the address, or it did not answer in time."""


class JobFailed(Exception):
    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(f"job {job['id']} {job['status']}: {job.get('error') or 'no model produced'}")
        self.job = job


_BY_STATUS = {
    400: InvalidRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    415: InvalidRequest,
    422: InvalidRequest,
}


@dataclass(frozen=True)
class Predictions:
    model: str
    version: int
    labels: list[int]
    probabilities: list[list[float]]

    @property
    def label(self) -> int:
        """The label of the first (or only) image."""
        return self.labels[0]


class Client:
    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        session: requests.Session | None = None,
    ) -> None:
        """``base_url`` defaults to the service on this machine, where ``BACKPROP_HOST`` and
        ``BACKPROP_PORT`` put it; ``token`` then to ``BACKPROP_API_TOKEN``."""
        if base_url is None:
            from service.settings import Settings

            local = Settings()
            base_url = local.local_url
            if token is None and local.api_token is not None:
                token = local.api_token.get_secret_value()
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The answer, raised as an ``ApiError`` (by status) when it is an error."""
        try:
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            reason = "no answer in time" if isinstance(exc, requests.Timeout) else "nothing answers there"
            raise Unreachable(
                0, "unreachable", f"cannot reach {self.base_url} ({reason}): is backprop serve running?"
            ) from exc
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "http_error", "message": response.text[:200] or response.reason}
            cls = _BY_STATUS.get(
                response.status_code, ServerError if response.status_code >= 500 else ApiError
            )
            raise cls(
                response.status_code,
                error.get("code", "error"),
                error.get("message", ""),
                error.get("details"),
            )
        return response

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        return response.json() if response.content else None

    # -- predictions ---------------------------------------------------------------------------

    def predict(
        self,
        images: Sequence | np.ndarray,
        *,
        model: str | None = None,
        version: int | None = None,
        scale: str = "pixel",
    ) -> Predictions:
        """Classify one image (784 values, or 28x28) or a batch (a list of them, (N, 784), (N, 28, 28))."""
        selection = {k: v for k, v in {"model": model, "version": version}.items() if v is not None}
        if isinstance(images, np.ndarray) and images.dtype == np.uint8 and scale == "pixel":
            body = np.ascontiguousarray(images).reshape(-1, 784).tobytes()
            answer = self._request(
                "POST",
                "/predict",
                params=selection,
                data=body,
                headers={"Content-Type": "application/octet-stream"},
            )
        else:
            array = np.asarray(images, dtype=np.float64)
            if array.size % 784 or array.size == 0:
                raise ValueError(f"expected images of 784 pixels, got an array of shape {array.shape}")
            rows = array.reshape(-1, 784).tolist()
            payload = {"pixels": rows[0]} if array.size == 784 else {"instances": rows}
            answer = self._request("POST", "/predict", json={**payload, **selection, "scale": scale})
        predictions = answer["predictions"]
        return Predictions(
            answer["model"]["name"],
            answer["model"]["version"],
            [p["label"] for p in predictions],
            [p["probabilities"] for p in predictions],
        )

    # -- models ---------------------------------------------------------------------------------

    def models(self) -> dict[str, Any]:
        return self._request("GET", "/models")

    def model(self, name: str) -> dict[str, Any]:
        return self._request("GET", f"/models/{name}")

    def version(self, name: str, version: int) -> dict[str, Any]:
        return self._request("GET", f"/models/{name}/versions/{version}")

    def set_default(self, name: str, version: int, *, service_wide: bool = True) -> dict[str, Any]:
        return self._request(
            "PUT", f"/models/{name}/default", json={"version": version, "service_wide": service_wide}
        )

    def delete_version(self, name: str, version: int) -> None:
        self._request("DELETE", f"/models/{name}/versions/{version}")

    def upload(
        self,
        file: str | Path | bytes,
        model: str,
        *,
        make_default: bool = False,
        description: str | None = None,
        training_source: str | None = None,
    ) -> dict[str, Any]:
        """Add a ``.npz`` model file (a path or its bytes) as the next version of ``model``; the
        new version's metadata (``version``, ``sha256``, ``source: "upload"``, ...)."""
        data = file if isinstance(file, bytes) else Path(file).read_bytes()
        options = {"description": description, "training_source": training_source}
        metadata = {"make_default": make_default, **{k: v for k, v in options.items() if v is not None}}
        # In a metadata part rather than the query string, whose text the request line limits.
        parts = {
            "file": ("model.npz", data, "application/octet-stream"),
            "metadata": (None, json.dumps(metadata), "application/json"),
        }
        return self._request("POST", f"/models/{model}/versions", files=parts)

    def download(self, name: str, version: int, *, onnx: bool = False, pixels: str = "uint8") -> bytes:
        """A version's ``.npz`` file (checked against the sha256 the service sends with it), or with
        ``onnx`` the version as an ONNX model whose input takes ``pixels`` (uint8 or float32)."""
        if onnx:
            path = f"/models/{name}/versions/{version}/model.onnx"
            return self._send("GET", path, params={"pixels": pixels}).content
        response = self._send("GET", f"/models/{name}/versions/{version}/file")
        data = response.content
        digest = response.headers.get("Repr-Digest", "")
        expected = base64.b64encode(hashlib.sha256(data).digest()).decode()
        if digest != f"sha-256=:{expected}:":
            message = f"{name} v{version} arrived damaged (Repr-Digest {digest!r})"
            raise ApiError(response.status_code, "digest_mismatch", message)
        return data

    # -- training jobs --------------------------------------------------------------------------

    def train(self, **request: Any) -> dict[str, Any]:
        """Queue a training job (keywords as in POST /train); returns ``{"id", "status", "location"}``."""
        return self._request("POST", "/train", json=request)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/jobs/{job_id}")

    def jobs(self, limit: int = 20, offset: int = 0) -> dict[str, Any]:
        return self._request("GET", "/jobs", params={"limit": limit, "offset": offset})

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._request("POST", f"/jobs/{job_id}/cancel")

    def wait(
        self,
        job_id: str,
        *,
        poll: float = 0.5,
        timeout: float | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the job finishes; return its record, or raise ``JobFailed``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if progress is not None:
                progress(job)
            if job["status"] == "succeeded":
                return job
            if job["status"] in ("failed", "cancelled"):
                raise JobFailed(job)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(poll)

    def readiness(self) -> tuple[bool, str]:
        """(ready, what the service said): ready when ``/readyz`` answers 200; otherwise its
        answer, or why there was none."""
        try:
            response = self.session.get(self.base_url + "/readyz", timeout=self.timeout)
        except requests.RequestException as exc:
            return False, f"{self.base_url}: {exc}"
        return response.status_code == 200, response.text.strip()

    def ready(self) -> bool:
        return self.readiness()[0]
