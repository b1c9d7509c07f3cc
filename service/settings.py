"""Configuration: read from ``BACKPROP_*`` environment variables into one typed object.

Code never reads the environment itself; it receives a ``Settings`` (tests build their own).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.errors import UnsafeConfiguration

API_TOKEN_MIN_LENGTH = 16


EXPENSIVE_POOL = "backprop-expensive"  # gunicorn's name for the pool of expensive requests


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BACKPROP_", extra="ignore", frozen=True)

    model_store: Path = Field(Path("./model_store"), description="model store directory")
    data_dir: Path = Field(Path("./data"), description="dataset root (torchvision layout or IDX folders)")
    dataset_mirrors: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="comma-separated base URLs tried instead of the standard dataset mirrors",
    )

    state_dir: Path = Field(Path("./var"), description="job queue, job records, metrics files, shadows' pace")
    host: str = Field("127.0.0.1", description="address the service listens on")
    port: int = Field(8000, ge=1, le=65535)
    grpc_port: int = Field(
        8001,
        ge=0,
        le=65535,
        description="port of the Open Inference Protocol over gRPC, beside the HTTP port (0: off)",
    )
    front: Literal["auto", "nginx", "none"] = Field(
        "auto",
        description="what `backprop serve` puts before gunicorn: nginx (reads whole requests first, "
        "so slow clients cost only a connection), none (only behind your own buffering proxy), or auto: "
        "nginx when it is installed, else gunicorn alone on a loopback address",
    )
    nginx: str = Field("nginx", description="the nginx executable (a name on PATH or a path)")
    log_format: Literal["plain", "json"] = Field(
        "plain", description="log lines: plain text, or one JSON object per line (for log collectors)"
    )
    workers: int = Field(2, ge=1, le=64, description="gunicorn worker processes")
    threads: int = Field(
        2, ge=1, le=64, description="threads per gunicorn worker with front none (behind nginx: one)"
    )
    api_token: SecretStr | None = Field(None, description="bearer token for model-changing endpoints")
    allow_insecure: bool = Field(
        False, description="allow a non-loopback bind with model-changing endpoints open (no token)"
    )
    max_body_mb: float = Field(64.0, gt=0, le=1024, description="largest request body accepted, MiB")
    max_model_mb: float = Field(
        32.0,
        gt=0,
        le=512,
        description="largest model file an upload may carry, MiB (the request must also fit in "
        "BACKPROP_MAX_BODY_MB: the protocol's load sends the file in base64, a third larger)",
    )
    max_batch: int = Field(16384, ge=1, le=1_000_000, description="most images in one /predict request")
    max_image_pixels: int = Field(
        16_000_000,
        ge=1,
        le=200_000_000,
        description="largest picture (width x height) /predict decodes; a JPEG counts at the reduced "
        "scale it is decoded at (a 48-megapixel photo passes)",
    )
    expensive_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="gunicorn workers of the pool that serves explanations and pictures behind nginx "
        "(the cheap routes have BACKPROP_WORKERS of their own)",
    )
    expensive_nice: int = Field(
        19, ge=0, le=19, description="CPU priority drop of the expensive pool: cheap requests come first"
    )
    expensive_waiting: int = Field(
        2,
        ge=0,
        le=1024,
        description="expensive requests that may wait for a free expensive worker; more are refused "
        "at once with 503 and Retry-After",
    )
    explain_max_batch: int = Field(
        16, ge=1, le=1024, description="most images in one /explain request (each costs up to 512 passes)"
    )
    default_refresh_seconds: float = Field(
        1.0,
        ge=0,
        le=3600,
        description="how often a worker re-reads which model is the default and looks "
        "again at a cached version's files",
    )

    redis_url: str | None = Field(None, description="when set, jobs and job records live in Redis")
    job_concurrency: int = Field(1, ge=1, le=16, description="training jobs one worker runs at once")
    job_max_attempts: int = Field(2, ge=1, le=10, description="runs of a job whose worker was lost")
    heartbeat_seconds: float = Field(1.0, gt=0, le=60, description="how often a running job reports in")
    stale_seconds: float = Field(
        15.0, gt=0, le=3600, description="silence after which a job's worker is lost"
    )
    worker_nice: int = Field(10, ge=0, le=19, description="CPU priority drop of training workers")
    outage_seconds: float = Field(
        60.0, ge=0, le=3600, description="how long a worker waits out an unreachable job store (at start too)"
    )
    max_queued_jobs: int = Field(
        100, ge=1, le=100_000, description="most jobs waiting in the queue; more get 429"
    )
    max_job_cost: float = Field(
        2e9,
        gt=0,
        description="most multiply-adds per training image (network multiply-adds x epochs) of a job",
    )
    allow_download: bool = Field(False, description="training workers may download missing datasets")
    feedback: bool = Field(
        True, description="POST /feedback takes corrections from anyone, the draw page's too (0: 403)"
    )
    feedback_max_examples: int = Field(
        10_000,
        ge=10,
        le=1_000_000,
        description="most examples the feedback store in BACKPROP_DATA_DIR holds (kept inputs at most "
        "half); a correction beyond is refused with 507",
    )
    feedback_per_minute: int = Field(
        30, ge=1, le=100_000, description="corrections one client address may send a minute (beyond: 429)"
    )
    capture_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of /predict and protocol requests whose inputs (up to 16 images) are kept with "
        "their answers, for corrections to name by request id (0: nothing is kept)",
    )
    drift: bool = Field(
        False,
        description="count every answer by label, confidence and out-of-distribution score for "
        "GET /models/NAME/versions/N/drift and /metrics (off: no cost)",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_installed(cls, value: str | None) -> str | None:
        # Said at start, by every command: a worker would otherwise die on it and be restarted forever.
        if value:
            try:
                import redis  # noqa: F401
            except ImportError:
                raise ValueError(
                    "the redis package is not installed; install it with: "
                    "python -m pip install 'backprop-service[redis]'"
                ) from None
        return value

    @field_validator("api_token")
    @classmethod
    def _strong_token(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty token would make "Authorization: Bearer " the key to every protected endpoint.
        if value is not None and len(value.get_secret_value().strip()) < API_TOKEN_MIN_LENGTH:
            raise ValueError(
                f"BACKPROP_API_TOKEN must hold at least {API_TOKEN_MIN_LENGTH} characters (an empty or "
                "short token is as good as none); make one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @property
    def gunicorn_worker(self) -> tuple[str, int]:
        """gunicorn's worker class and threads per worker."""
        if self.front == "nginx":
            # nginx hands each whole request over on a fresh connection: sync workers, one request
            # at a time, do the least work per request (benchmarks/predict_load.py measured 1.1-1.8x
            # the throughput of gthread workers in the same place); see service.gunicorn_worker.
            return "service.gunicorn_worker.WarmFirstWorker", 1
        # Facing clients: threads hold keep-alive connections (prediction releases the GIL).
        return "gthread", self.threads

    @property
    def local_url(self) -> str:
        """The service's address as seen from this machine."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def max_model_bytes(self) -> int:
        return int(self.max_model_mb * 1024 * 1024)

    @field_validator("dataset_mirrors", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


def describe_errors(exc: ValidationError) -> list[str]:
    """One sentence per invalid setting, naming the variable and the value it had."""
    lines = []
    errors = exc.errors()
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "too_short" and any(
            len(other["loc"]) > len(loc) for other in errors if tuple(other["loc"][: len(loc)]) == loc
        ):
            continue  # short only because its items were refused, which are said
        field = ".".join(str(part) for part in loc)
        name = f"BACKPROP_{field.upper()}" if field in Settings.model_fields else field
        shown = isinstance(error.get("input"), str | int | float) and field != "api_token"  # no secrets
        given = f"={error['input']!r}" if shown else ""
        lines.append(f"invalid {name}{given}: {error['msg'].removeprefix('Value error, ')}")
    return lines


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str | None = None) -> None:
    """Refuse a non-loopback listening address while model-changing endpoints are open to anyone.

    A configuration rule, not an HTTP one: ``backprop serve``, the gunicorn master and the CLI apply
    it before anything listens."""
    host = host or settings.host
    if is_loopback(host) or settings.api_token is not None or settings.allow_insecure:
        return
    raise UnsafeConfiguration(
        f"refusing to listen on {host} with model-changing endpoints open: set BACKPROP_API_TOKEN, "
        "or BACKPROP_ALLOW_INSECURE=1 to accept the risk, or bind to 127.0.0.1"
    )
