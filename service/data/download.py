"""Downloading datasets into the torchvision layout ``ROOT/<Folder>/raw/``.

With torchvision installed (the ``[torchvision]`` extra) and the standard mirrors, torchvision
does the download; otherwise ``requests`` fetches each file from the mirrors in turn. Every file
is checked against its published md5 before it is moved into place, so a corrupt or tampered
download never reaches the reader.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from service.data.catalogue import DatasetInfo
from service.errors import DownloadError

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT = (10, 60)  # connect, read (seconds)


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, dest: Path, expected_md5: str, session: requests.Session) -> None:
    """Stream ``url`` to a temp file beside ``dest``; move it into place only if md5 matches."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    os.fchmod(fd, 0o644)  # mkstemp creates 0600; datasets are shared read-only
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, session.get(url, stream=True, timeout=TIMEOUT) as resp:
            resp.raise_for_status()
            for chunk in resp.iter_content(CHUNK):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != expected_md5:
            raise DownloadError(f"{url}: md5 {actual} does not match the published {expected_md5}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def download_with_requests(info: DatasetInfo, raw_dir: Path, mirrors: tuple[str, ...]) -> None:
    import requests  # here: every process that reads datasets imports this module, few download

    raw_dir.mkdir(parents=True, exist_ok=True)
    with requests.Session() as session:
        for filename, expected in info.md5.items():
            dest = raw_dir / filename
            if dest.is_file() and md5sum(dest) == expected:
                continue
            failures = []
            for mirror in mirrors:
                url = mirror.rstrip("/") + "/" + filename
                log.info("downloading %s", url)
                try:
                    _fetch(url, dest, expected, session)
                    break
                except (requests.RequestException, DownloadError, OSError) as exc:
                    failures.append(f"{url}: {exc}")
            else:
                raise DownloadError(
                    f"could not download {filename} for {info.name}:\n  " + "\n  ".join(failures)
                )


def _torchvision_download(info: DatasetInfo, root: Path) -> bool:
    try:
        import torchvision.datasets as tv_datasets  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - a broken torch install must not break downloading
        return False
    try:
        getattr(tv_datasets, info.torchvision_class)(str(root), train=True, download=True)
    except Exception as exc:  # noqa: BLE001 - fall back to our own downloader
        log.warning("torchvision download of %s failed (%s); trying the mirrors", info.name, exc)
        return False
    return True


def download_dataset(info: DatasetInfo, root: Path, *, mirrors: tuple[str, ...] | None = None) -> Path:
    """Download ``info`` into ``root/<Folder>/raw`` and return that folder.

    ``mirrors`` replaces the standard mirrors (and then torchvision is not used).
    """
    raw_dir = info.torchvision_dir(root)
    if mirrors is None and _torchvision_download(info, root):
        return raw_dir
    download_with_requests(info, raw_dir, mirrors or info.mirrors)
    return raw_dir
