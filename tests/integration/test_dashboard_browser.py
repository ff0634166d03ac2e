"""The dashboard in a real headless Chromium (Debian's chromium and its
version-matched chromedriver, driven by Selenium), served by `wheelfarm
dashboard` over a farm with succeeded, failed and running jobs made through the
queue's API, a real failed `wheelfarm build` in the same farm directory, and
an index published and signed with gpg. Screenshots go to
test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashfarm import COMPILER_ERROR, HOSTILE, DashFarm, make_farm
from tests.wheels import make_wheel
from wheelfarm import api
from wheelfarm.cli import main
from wheelfarm.farm.dashboard import issue_operator_token

from .publish_support import Key
from .queue_support import free_port, spawn, stop

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1000")
WHEEL = "fastadd-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Key, Key]) -> DashFarm:
    root = tmp_path_factory.mktemp("dashfarm")
    made = make_farm(root, f'[publish]\nurl = "{root / "index"}"\n')
    # A real failed local build: its source is a file that does not exist.
    recipe = root / "recipes" / "lonely.toml"
    recipe.parent.mkdir()
    recipe.write_text(f'[package]\nname = "lonely"\nversion = "1.0"\nowners = ["@carol"]\n'
                      f'[source]\nurl = "{(root / "missing.tar.gz").as_uri()}"\n'
                      f'sha256 = "{"0" * 64}"\n')
    assert main(["build", str(recipe), "--farm", str(root), "--out", str(root / "out"),
                 "--target", "linux_x86_64", "--python", "cp312"]) == 1
    # A published, signed index: generation 1 holds a manylinux2014 wheel of fastadd.
    upload = root / "upload"
    make_wheel(upload, "fastadd", "1.0", "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64")
    env = {"GNUPGHOME": str(keys[0].home), "WHEELFARM_PUBLISHER": "release-bot@ci"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        api.publish([upload], api.Index(farm_dir=root, sign_key=keys[0].fingerprint))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return made


@pytest.fixture(scope="module")
def base_url(farm: DashFarm) -> Iterator[str]:
    port = free_port()
    process = spawn("dashboard", "--farm", farm.root, "--port", str(port), cwd=farm.root,
                    log=farm.root / "dashboard.log")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/", timeout=2).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop(process)
                pytest.fail("the dashboard did not come up: "
                            + (farm.root / "dashboard.log").read_text())
            time.sleep(0.2)
    yield url
    stop(process)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/setup.d/80-chromium.sh)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def shot(driver: Any, name: str) -> None:
    assert driver.save_screenshot(str(SHOTS / f"{name}.png"))
    assert (SHOTS / f"{name}.png").stat().st_size > 1000


def test_grid_job_and_log_pages(farm: DashFarm, base_url: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    d: Any = browser
    d.get(base_url + "/")
    cells = d.find_elements(By.CSS_SELECTOR, "#grid td.cell")
    states = sorted(c.get_attribute("data-state") for c in cells)
    assert states == ["failed", "failed", "running", "succeeded"]  # lonely is a local build
    rows = [r.text.split("\n")[0] for r in d.find_elements(
        By.CSS_SELECTOR, "#grid tbody th")]
    assert rows == ["brokenc", "fastadd", "lonely"]
    shot(d, "grid")

    d.find_element(By.CSS_SELECTOR, f'a[href="/jobs/{farm.failed}"]').click()
    assert d.find_element(By.ID, "failing-step").text == "build"
    assert d.find_element(By.ID, "job-cause").text == "compiler-error"
    first = d.find_element(By.ID, "first-errors").text.splitlines()
    assert first == [COMPILER_ERROR]  # the compiler's line, not the pipeline's summary
    shot(d, "job-failed")

    d.find_element(By.LINK_TEXT, "log").click()
    log = d.find_element(By.ID, "log").text
    assert HOSTILE in log  # shown as text ...
    assert d.title != "owned" and "log of brokenc" in d.title
    assert not d.find_elements(By.CSS_SELECTOR, "#log script")
    shot(d, "log-failed")


def test_a_running_jobs_log_is_followed(farm: DashFarm, base_url: str,
                                        browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d: Any = browser
    d.get(f"{base_url}/jobs/{farm.running}/log")
    assert "compiling..." in d.find_element(By.ID, "log").text
    with farm.running_log.open("a") as fh:
        fh.write("linking fastadd.so\n")
    WebDriverWait(d, 20).until(
        lambda drv: "linking fastadd.so" in drv.find_element(By.ID, "log").text)
    shot(d, "log-running")


def test_failures_by_cause(farm: DashFarm, base_url: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    d: Any = browser
    d.get(base_url + "/failures")
    compiler = d.find_element(By.ID, "cause-compiler-error").text
    assert "brokenc" in compiler and "@bob, team-c" in compiler and "lonely" not in compiler
    sections = d.find_elements(By.CSS_SELECTOR, "section.cause")
    local = [s for s in sections if "lonely" in s.text]
    assert len(local) == 1 and "@carol" in local[0].text
    assert local[0].get_attribute("id") in ("cause-network", "cause-other")
    shot(d, "failures")


def test_recipe_and_generations_pages(farm: DashFarm, base_url: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    d: Any = browser
    d.get(base_url + "/recipes/fastadd")
    assert d.find_element(By.ID, "owners").text == "@alice"
    wheels = d.find_element(By.ID, "wheels").text
    assert WHEEL in wheels
    assert "glibc 2.17+" in wheels and "RHEL 7+" in wheels and "Debian 8+" in wheels
    history = d.find_element(By.ID, "history").text
    assert "succeeded" in history and "running" in history
    shot(d, "recipe")
    d.get(base_url + "/generations")
    rows = d.find_elements(By.CSS_SELECTOR, "#generations tbody tr")
    assert len(rows) == 1
    assert "1 (live)" in rows[0].text and "release-bot@ci" in rows[0].text
    assert f"publish {WHEEL}" in rows[0].text
    shot(d, "generations")


def test_retry_from_the_browser_needs_an_operator_token(farm: DashFarm, base_url: str,
                                                        browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    d: Any = browser
    d.get(f"{base_url}/jobs/{farm.failed}")
    form = d.find_element(By.CSS_SELECTOR, f'form[action="/jobs/{farm.failed}/retry"]')
    form.find_element(By.NAME, "token").send_keys("not-a-token")
    form.find_element(By.TAG_NAME, "button").click()
    # The form's answer is a new page: wait for it rather than read the old one's body.
    WebDriverWait(d, 20).until(ec.text_to_be_present_in_element(
        (By.TAG_NAME, "body"), "not an operator's token"))
    assert "not an operator's token" in d.find_element(By.TAG_NAME, "body").text
    assert farm.queue.find(farm.failed).state == "failed"
    token = issue_operator_token(farm.queue, "alice")
    d.get(f"{base_url}/jobs/{farm.failed}")
    form = d.find_element(By.CSS_SELECTOR, f'form[action="/jobs/{farm.failed}/retry"]')
    form.find_element(By.NAME, "token").send_keys(token)
    form.find_element(By.TAG_NAME, "button").click()
    WebDriverWait(d, 20).until(ec.text_to_be_present_in_element((By.ID, "job-state"),
                                                                "pending"))
    assert d.find_element(By.ID, "job-state").text == "pending"
    assert farm.queue.find(farm.failed).state == "pending"
    shot(d, "job-retried")
