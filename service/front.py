"""The front of ``backprop serve``: nginx before gunicorn, so that slow clients cost only themselves.

gunicorn's workers read a request in one of their few threads: a client that sends half its headers
and stalls holds that thread, and a handful of them stop the API. gunicorn's own documentation asks
for a buffering proxy in front of it, and nginx is the one it names. nginx holds each client
connection (thousands, in one event loop) until the request is complete, within its size and time
limits, and only then hands it to gunicorn over a private Unix socket, one connection per request.
Every gunicorn worker competes for those connections as soon as it is free, so the load spreads over
the workers instead of sticking to whichever one accepted a client's keep-alive connection.

Requests come in two cost classes (``service.api.cost``): the expensive ones (explanations,
pictures) go to a gunicorn pool of their own, and at most BACKPROP_EXPENSIVE_WAITING of them wait
for it; nginx refuses more at once. The cheap pool never waits behind them.

nginx's own refusals (a body over the limit, a malformed request, headers too large, too many
expensive requests, gunicorn not answering) answer in the API's one error shape, like everything
else. A prediction whose worker dies under it is sent once more, to another worker.
"""

from __future__ import annotations

import json
import os
import pwd
import resource
import shutil
from pathlib import Path

from service.errors import Busy, FrontUnavailable, code_of
from service.settings import Settings, is_loopback
from service.wire import PROTOCOL_PREFIX, body_too_large, error_body

# Seconds. A client has this long to send its headers, and at most this long between two reads of
# its body or of the answer; then nginx closes its connection.
CLIENT_TIMEOUT = 15
KEEPALIVE_TIMEOUT = 5  # like gunicorn's
UPSTREAM_TIMEOUT = 90  # gunicorn stops a worker stuck for 60 s (its timeout) and answers with 500
SHUTDOWN_SECONDS = 10  # a graceful stop waits this long for connections still busy
HEADER_BUFFER = "8k"  # the request line and each header line; four of them for all the headers
TEMP_FOLDERS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")  # nginx checks all five at start
POOLS = ("cheap", "expensive")  # gunicorn pools, each on its socket in the runtime folder
BUSY_RETRY_SECONDS = Busy.retry_after  # as the app says it, for the same refusal


def pool_socket(runtime: Path, pool: str) -> Path:
    return runtime / f"{pool}.sock"


def nginx_executable(settings: Settings) -> str:
    """The nginx to run: ``BACKPROP_NGINX`` as a path, or found on PATH or in the sbin folders
    (which a non-root user's PATH often lacks)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    found = shutil.which(settings.nginx, path=search)
    if found is None:
        raise FrontUnavailable(f"nginx not found ({settings.nginx!r})")
    return found


def choose_front(settings: Settings) -> str | None:
    """The nginx executable to put before gunicorn, or None for gunicorn alone.

    ``auto`` takes nginx when it is installed. Without it, gunicorn may face clients only on a
    loopback address, where the slow clients that could stall it are this machine's own."""
    if settings.front == "none":
        return None
    try:
        return nginx_executable(settings)
    except FrontUnavailable:
        if settings.front == "nginx" or not is_loopback(settings.host):
            raise FrontUnavailable(
                f"refusing to listen on {settings.host} without nginx in front, which keeps slow clients "
                "from stalling the API: install nginx (Debian/Ubuntu: apt-get install nginx-light; "
                "macOS: brew install nginx), or set BACKPROP_FRONT=none if your own buffering proxy "
                "faces the clients"
            ) from None
        return None


ERROR_PATH = "/_backprop/error/"  # internal: no client request reaches it


def _error_pages(settings: Settings, path: str = "/") -> tuple[str, str]:
    """nginx's refusals in the error shape of the API at ``path`` (``/v2``: the Open Inference
    Protocol's): the ``error_page`` directives, and the pages' locations (at the server's level).
    A page is a URI, not a named location: a request whose request line could not be parsed has no
    URI, and nginx then cannot reach a named one."""
    pages = [  # (nginx's status, the status and reason clients get, the message)
        (400, 400, "Bad Request", "malformed request: the request line, headers or chunked body"),
        (408, 408, "Request Timeout", f"the request did not arrive within {CLIENT_TIMEOUT} s"),
        (413, 413, "Request Entity Too Large", body_too_large(settings.max_body_bytes)),
        (414, 414, "URI Too Long", f"the request line is longer than {HEADER_BUFFER}B"),
        # nginx's own status for headers too large is 494, which clients see as 400: say 431, as
        # gunicorn does.
        (494, 431, "Request Header Fields Too Large", f"a header over {HEADER_BUFFER}B, or all over 4x that"),
        (500, 500, "Internal Server Error", "the front failed (is its temporary folder full?)"),
        (501, 501, "Not Implemented", "a Transfer-Encoding other than chunked"),
        (505, 505, "HTTP Version Not Supported", "only HTTP/1.0 and HTTP/1.1 are spoken here"),
        (503, 503, "Busy", _busy_message(settings)),
        (502, 502, "Bad Gateway", "no API process answered; if this lasts, see the service log"),
        (504, 504, "Gateway Timeout", f"the API did not answer within {UPSTREAM_TIMEOUT} s"),
    ]
    folder = ERROR_PATH + path.strip("/") + ("/" if path != "/" else "")
    directives, locations = "", ""
    for status, answer_as, reason, message in pages:
        answer_as, document = error_body(path, answer_as, code_of(reason), message)
        body = json.dumps(document)
        assert "'" not in body and "$" not in body  # nginx string syntax: no quote, no variable
        retry = f"    add_header Retry-After {BUSY_RETRY_SECONDS} always;\n" if status == 503 else ""
        directives += f"error_page {status} ={answer_as} {folder}{status};\n"
        locations += (
            f"location = {folder}{status} {{\n"
            "    internal;\n"
            "    default_type application/json;\n"
            f"{retry}"
            f"    return {answer_as} '{body}';\n"
            "}\n"
        )
    return directives, locations


def _busy_message(settings: Settings) -> str:
    running, waiting = settings.expensive_workers, settings.expensive_waiting
    return (
        "too many expensive requests (explanations, pictures, model files) at once: "
        f"{running} run and {waiting} wait at most "
        f"(BACKPROP_EXPENSIVE_WORKERS, BACKPROP_EXPENSIVE_WAITING); try again in {BUSY_RETRY_SECONDS} s"
    )


def _indented(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line + "\n" for line in text.splitlines())


def _proxy(settings: Settings) -> str:
    """What every location does: hand the request to its pool ($pool: "cheap" or "expensive", the
    names of the upstream groups), at most so many expensive ones at once."""
    limit = settings.expensive_workers + settings.expensive_waiting
    return f"""\
            proxy_pass http://$pool;
            limit_conn expensive_requests {limit};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Request-ID $backprop_request_id;
            proxy_read_timeout {UPSTREAM_TIMEOUT}s;
            proxy_next_upstream_tries 2;
"""


def _upstreams(runtime: Path) -> str:
    # Each socket twice: a request whose worker died under it (killed, out of memory) has a "next"
    # server to go to, which is any live worker of the pool. max_fails=0: never set a peer aside.
    return "".join(
        f"    upstream {pool} {{\n"
        + f"        server unix:{pool_socket(runtime, pool)} max_fails=0;\n" * 2
        + "    }\n"
        for pool in POOLS
    )


def nginx_config(settings: Settings, runtime: Path) -> str:
    """The whole configuration: nothing from /etc/nginx is read, every file lives in ``runtime``."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    temp = "".join(f"    {kind}_temp_path {runtime / kind};\n" for kind in TEMP_FOLDERS)
    # Workers of a root master would switch to "nobody", who cannot reach the private socket.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    # Each client costs a connection and, while its request runs, another one to gunicorn.
    connections = max(256, min(16384, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 64))
    api_errors, api_pages = _error_pages(settings)
    proxy = _proxy(settings)
    protocol_errors, protocol_pages = _error_pages(settings, PROTOCOL_PREFIX)
    return f"""# Written by backprop serve at start; edits are lost.
daemon off;
{user}worker_processes 1;
worker_shutdown_timeout {SHUTDOWN_SECONDS}s;
pid {runtime / "nginx.pid"};
error_log stderr warn;
events {{
    worker_connections {connections};
}}
http {{
    access_log off;
    server_tokens off;
{temp}    client_max_body_size {settings.max_body_bytes};
    client_body_buffer_size 1m;
    client_header_timeout {CLIENT_TIMEOUT}s;
    client_body_timeout {CLIENT_TIMEOUT}s;
    send_timeout {CLIENT_TIMEOUT}s;
    keepalive_timeout {KEEPALIVE_TIMEOUT}s;
    large_client_header_buffers 4 {HEADER_BUFFER};
    # Explanations, pictures and model files are expensive; everything else is cheap. An empty key is not
    # counted by limit_conn: only expensive requests are.
    map "$uri $content_type" $pool {{
        default cheap;
        ~^/explain(/|\\s) expensive;
        "~^/predict\\s+(?i)image/" expensive;
        # Model files in and out: uploads, downloads, ONNX exports, the protocol's load.
        ~^/models/[^/]+/versions(/[0-9]+/(file|model\\.onnx))?\\s expensive;
        ~^/v2/repository/models/[^/]+/load\\s expensive;
    }}
    # The client's request id, or nginx's own: the app logs it and answers it in X-Request-ID.
    map $http_x_request_id $backprop_request_id {{
        "" $request_id;
        default $http_x_request_id;
    }}
    map $pool $expensive_key {{
        expensive 1;
        default "";
    }}
    limit_conn_zone $expensive_key zone=expensive_requests:1m;
    limit_conn_status 503;
    limit_conn_log_level info;
{_upstreams(runtime)}    server {{
        listen {host}:{settings.port};
        location / {{
{proxy}        }}
        # A prediction changes nothing: safe to send again, unlike a POST in general.
        location = /predict {{
{proxy}            proxy_next_upstream error timeout non_idempotent;
        }}
        # The Open Inference Protocol: inference only, and its own error shape. (A location that
        # has error_page directives inherits none: 405 is said again.)
        location {PROTOCOL_PREFIX} {{
{proxy}            proxy_next_upstream error timeout non_idempotent;
            error_page 405 = @api;
{_indented(protocol_errors, 12)}        }}
        # nginx refuses TRACE itself, without the Allow header a 405 needs: the app answers it.
        error_page 405 = @api;
        location @api {{
{proxy}        }}
{_indented(api_errors + api_pages + protocol_pages, 8)}    }}
}}
"""


def nginx_command(settings: Settings, runtime: Path, executable: str) -> list[str]:
    """Write the configuration into ``runtime`` (a private folder) and return the command to run."""
    for kind in TEMP_FOLDERS:
        (runtime / kind).mkdir(exist_ok=True)
    config = runtime / "nginx.conf"
    config.write_text(nginx_config(settings, runtime))
    return [executable, "-p", str(runtime), "-e", "stderr", "-c", str(config)]
