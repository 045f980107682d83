"""Headless Chromium (Debian's ``chromium`` + ``chromedriver``) and a ``dagster-webserver`` process
for UI tests.

Selenium drives the system browser through the system driver, both from the same Debian
package version; nothing is ever downloaded (Selenium Manager is bypassed by giving both paths).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

from rag_ingest.testing import REPO
from rag_ingest.testing.ports import free_port

if TYPE_CHECKING:  # selenium is imported lazily: collection works without it
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# The webserver of the interpreter running the tests (a worktree has no .venv of its own).
WEBSERVER = [sys.executable, "-m", "dagster_webserver"]
T = TypeVar("T")


def require_chromium() -> None:
    """Skip (or, under CI, fail) when the system browser or its driver is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if not missing:
        return
    reason = (
        f"UI test needs {', '.join(missing)}: "
        "apt-get install -y chromium chromium-driver && pip install selenium==4.51.0"
    )
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@dataclass
class Webserver:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def server_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def dagster_webserver(
    env: dict[str, str], log: Path, module: str = "rag_ingest.definitions", within: float = 180.0
) -> Iterator[Webserver]:
    """``dagster-webserver`` in its own process group, up once ``/server_info`` answers; the
    whole group is killed on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [*WEBSERVER, "-h", "127.0.0.1", "-p", str(port), "-m", module]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Webserver(url, process, log)
    try:
        deadline = time.monotonic() + within
        while not server_answers(url):
            assert process.poll() is None, f"webserver exited early:\n{server.log_tail()}"
            assert time.monotonic() < deadline, (
                f"webserver not up in {within}s:\n{server.log_tail()}"
            )
            time.sleep(0.5)
        yield server
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass


@contextmanager
def chromium(width: int = 1600, height: int = 1000) -> Iterator[WebDriver]:
    """A headless Chromium session; always quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(120)
        yield driver
    finally:
        driver.quit()


def wait_for(
    driver: WebDriver,
    condition: Callable[[WebDriver], T],
    what: str,
    evidence: Path,
    timeout: float = 180.0,
) -> T:
    """Poll ``condition`` until it returns something truthy; on timeout keep a screenshot and
    the page source as ``evidence``(.png/.html) and fail saying what never showed up."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5).until(condition)
    except TimeoutException:
        driver.save_screenshot(str(evidence.with_suffix(".png")))
        evidence.with_suffix(".html").write_text(driver.page_source)
        pytest.fail(
            f"the UI never showed {what} within {timeout:.0f}s at {driver.current_url}; "
            f"see {evidence.with_suffix('.png')}",
            pytrace=False,
        )


def displayed(driver: WebDriver, xpath: str) -> list[WebElement]:
    """Elements matching ``xpath`` that are actually rendered (stale ones count as absent)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    found = []
    for element in driver.find_elements(By.XPATH, xpath):
        try:
            if element.is_displayed():
                found.append(element)
        except StaleElementReferenceException:
            continue
    return found


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; asserts the file really is a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


# XPaths of the Dagster UI's pages (what the UI tests and the first-hour test look for).
def graph_node(name: str) -> str:
    """XPath of the asset graph's node for ``name`` (nodes are SVG foreignObjects)."""
    label = f"[@data-tooltip='{name}'][normalize-space()='{name}']"
    return f"//*[local-name()='foreignObject'][.//*{label}]"


def filled_node(name: str, materialized: int, partitions: int) -> str:
    """XPath of ``name``'s graph node once it shows ``materialized`` of its ``partitions``
    filled (the UI rounds the percentage down)."""
    percent = materialized * 100 // partitions
    return (
        graph_node(name)
        + f"[.//a[@href='/assets/{name}?view=partitions'][normalize-space()='{percent}% filled']]"
        + f"[.//*[normalize-space()='{partitions} partitions']]"
    )


def partition_row(key: str) -> str:
    """XPath of the partition list's row for ``key``."""
    return f"//div[@data-tooltip='{key}'][.//div[@title='{key}']]"


def materialized_row(key: str) -> str:
    """XPath of ``key``'s row with its green (materialized) status dot."""
    return (
        partition_row(key) + "/following-sibling::div[1][contains(@style, '--color-accent-green')]"
    )


# A partition's detail: the run linked under "Latest materialization".
LATEST_MATERIALIZATION_RUN = (
    "//*[normalize-space()='Latest materialization']/following::a[starts-with(@href, '/runs/')]"
)


def change_row(change: str, source: str, status: str) -> str:
    """XPath of a row of a shard materialization's ``changes`` metadata (a Markdown table,
    rendered inline while it is short): ``source`` was ``change``d with outcome ``status``."""
    return (
        "//tr[td[normalize-space()='changes']]//tr"
        f"[td[1][normalize-space()='{change}']][td[2][normalize-space()='{source}']]"
        f"[td[3][normalize-space()='{status}']]"
    )


def assert_screenshot(driver: WebDriver, path: Path) -> None:
    """Save a screenshot of the page at ``path``; fail if it is missing, small or blank-sized."""
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    width, height = png_size(path)
    assert width >= 800 and height >= 600, (path, width, height)
    assert path.stat().st_size > 20_000, f"{path} is suspiciously small (a blank page?)"
