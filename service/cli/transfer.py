"""``backprop push`` and ``export``: model files into a running service, and out of the store (or a
service) as ``.npz`` or ONNX."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from service.cli.common import options_given, said_by_service, store_of, write_file
from service.errors import BackpropError
from service.onnx_export import ExportOptions, to_onnx
from service.reporters import emit
from service.repository import UploadOptions
from service.settings import Settings

_TARGET = re.compile(r"(?P<name>[^:]+)(?::v?(?P<version>[0-9]{1,10}))?")


def _client(url: str | None, settings: Settings):
    from service.client import Client

    token = settings.api_token.get_secret_value() if settings.api_token else None
    return Client(url or settings.local_url, token=token)


def cmd_push(args: argparse.Namespace, settings: Settings) -> int:
    from service.client import ApiError

    options = options_given(args, UploadOptions)
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise BackpropError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    client = _client(args.url, settings)
    try:
        meta = client.upload(data, args.model, **options.model_dump())
    except ApiError as exc:
        raise said_by_service(exc, client.base_url) from exc
    where = f"{client.base_url}/models/{meta['name']}/versions/{meta['version']}"
    if args.json:
        emit({**meta, "location": where})
    else:
        default = ", now the default" if options.make_default else ""
        print(f"pushed {args.file} as {meta['name']} v{meta['version']}{default}: {where}")
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    found = _TARGET.fullmatch(args.target)
    if found is None:
        raise BackpropError(f"say which model as NAME or NAME:VERSION, got {args.target!r}")
    if not (args.onnx or args.npz):
        raise BackpropError("say what to write: --onnx FILE, --npz FILE, or both")
    how = options_given(args, ExportOptions)
    name, version = found["name"], int(found["version"]) if found["version"] else None
    if args.url:
        from service.client import ApiError

        client = _client(args.url, settings)
        try:
            if version is None:
                version = client.model(name)["default_version"]
            npz = client.download(name, version) if args.npz else b""
            onnx = client.download(name, version, onnx=True, pixels=how.pixels) if args.onnx else b""
        except ApiError as exc:
            raise said_by_service(exc, client.base_url) from exc
    else:
        store = store_of(args, settings)
        name, version = store.resolve(name, version)
        npz = store.read_file(name, version)[0] if args.npz else b""
        onnx = to_onnx(*store.load(name, version), how) if args.onnx else b""
    for path, data in ((args.npz, npz), (args.onnx, onnx)):
        if path is None:
            continue
        write_file(Path(path), data)
        if args.json:
            emit({"model": name, "version": version, "file": str(path), "bytes": len(data)})
        else:
            print(f"wrote {name} v{version} to {path} ({len(data):,} bytes)")
    return 0
