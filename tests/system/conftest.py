"""The system tier: real processes (``backprop serve`` and its nginx, gunicorn and training worker),
containers and a browser. Everything here is marked slow (tests/conftest.py).

A real Chromium (Debian's, driven by Playwright) for the page tests; every page a test opens is
checked for console errors, and screenshots go to the artifacts folder."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO

# The quick tier installs only the test extra, without the dev extra's tools: modules that import
# them are not collected then (their tests are all in this slow tier anyway).
NEEDS = {
    "test_fuzz.py": "schemathesis",
    "test_compose.py": "yaml",
    "test_pages.py": "playwright",
    "test_dashboard.py": "playwright",
    "test_pages_corrections.py": "playwright",
}
collect_ignore = [module for module, package in NEEDS.items() if importlib.util.find_spec(package) is None]

CHROMIUM = os.environ.get("BACKPROP_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("BACKPROP_TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (scripts/test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Pages:
    """Browser pages of one test, each watched for console errors and uncaught exceptions."""

    def __init__(self, browser) -> None:
        self.browser = browser
        self.contexts = []
        self.errors: list[str] = []

    def open(self, url: str, *, fake_clock: bool = False, **context_options):
        """A new page at ``url``; with ``fake_clock`` its timers run on Playwright's clock, which
        flows as time does until the test pauses it (``page.clock.pause_at``) to run it by hand."""
        context = self.browser.new_context(**{"viewport": {"width": 1280, "height": 900}, **context_options})
        self.contexts.append(context)
        page = context.new_page()
        if fake_clock:
            page.clock.install()
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"{page.url}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: {e}"))
        page.goto(url)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser):
    opened = Pages(browser)
    yield opened
    opened.close()
    assert not opened.errors, opened.errors


def data_folder(tmp_path: Path, mnist5k_dir: Path) -> Path:
    """A data folder of the tests' own holding the 5,000 digits (a link): what the service writes
    there (the store of corrections) stays out of the shared data."""
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    if not (folder / "mnist").exists():
        (folder / "mnist").symlink_to(mnist5k_dir)
    return folder


@pytest.fixture
def server(store_dir, tmp_path, mnist5k_dir):
    """A real ``backprop serve`` (nginx, gunicorn with two workers, a training worker, drift
    counted); yields (url, process)."""
    from tests.system.processes import running

    data = data_folder(tmp_path, mnist5k_dir)
    with running(tmp_path, model_store=store_dir, data_dir=data, drift=True) as service:
        yield service.url, service.proc


@pytest.fixture
def service(tmp_path, store_dir, mnist5k_dir):
    """Start ``tests.system.processes.Service``s with these defaults (and overrides); all are killed at
    the end."""
    from tests.system.processes import Service

    started: list[Service] = []

    def start(**settings) -> Service:
        options = {"model_store": store_dir, "data_dir": data_folder(tmp_path, mnist5k_dir), **settings}
        started.append(Service(tmp_path, **options))  # recorded first: killed even if it never comes up
        return started[-1].start()

    yield start
    for svc in started:
        svc.kill_all()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory, mnist5k_dir):
    """Like ``server``, but one for the module's tests: for tests that only read, or whose
    changes the module's later tests expect (a stack costs seconds to start and stop)."""
    from tests.conftest import copy_shipped_store
    from tests.system.processes import running

    tmp_path = tmp_path_factory.mktemp("served")
    store = copy_shipped_store(tmp_path / "store")
    with running(tmp_path, model_store=store, data_dir=data_folder(tmp_path, mnist5k_dir)) as service:
        yield service.url, service.proc


_IMAGE_BUILD = pytest.StashKey()


def pytest_collection_finish(session):
    """Start building the production image now when a collected test will use it."""
    if session.config.option.collectonly:
        return
    if any("service_image" in getattr(item, "fixturenames", ()) for item in session.items):
        from tests.system.containers import BackgroundBuild

        session.config.stash[_IMAGE_BUILD] = BackgroundBuild()


def pytest_sessionfinish(session):
    """The image and its build folder go at the end of the run, whether or not a test used them."""
    building = session.config.stash.get(_IMAGE_BUILD, None)
    if building is not None:
        with contextlib.suppress(BaseException):
            building.wait()
        building.remove()


@pytest.fixture(scope="session")
def service_image(request):
    """(engine, tag) of the production image, built once for the container and compose tests, from
    the tracked files and a store holding a user's own model too (which must stay out of it)."""
    return request.config.stash[_IMAGE_BUILD].wait()  # started by pytest_collection_finish
