"""perfd's interactive flamegraph SVGs in a real browser: headless Chromium driven by Selenium
with real mouse moves, clicks and keys (the unit test runs the same script under node against a
fake DOM). Geometry and colours are read from the rendered page, never recomputed here.

Chromium and its driver are Debian's (scripts/install-test-deps.sh installs them); Selenium
Manager never runs, so nothing is downloaded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from perfd.evidence.flamegraph import HELP_TEXT, render_diff_flamegraph, render_flamegraph
from perfd.evidence.profile import diff_profiles, parse_folded

pytestmark = pytest.mark.slow
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,900"]
MATCH_FILL = (230, 0, 230)

PLAIN = parse_folded("main;handle;parse 60\nmain;handle;serialize 30\nmain;log 10\n")
BASE = parse_folded("main;a 50\nmain;b 40\nmain;c 10\n")
CUR = parse_folded("main;a 320\nmain;b 40\nmain;c 40\n")  # a 50% -> 80%, b 40% -> 10%, c 10% -> 10%


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    options = Options()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # belt and braces: an explicit Service path skips Selenium Manager
        try:
            chrome = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        except WebDriverException as e:
            pytest.fail(f"cannot start headless Chromium ({CHROMIUM} via {CHROMEDRIVER}): {e}\n"
                        "scripts/install-test-deps.sh installs the chromium and chromium-driver packages")
    yield chrome
    chrome.quit()


@pytest.fixture
def open_svg(driver: webdriver.Chrome, tmp_path: Path) -> Callable[[str], dict[str, WebElement]]:
    """Load an SVG from a file:// URL; returns each frame's <rect> by function name."""
    def load(svg: str) -> dict[str, WebElement]:
        path = tmp_path / "flamegraph.svg"
        path.write_text(svg)
        js_errors(driver)  # drain the log: each test checks what its own page logged
        driver.get(path.as_uri())
        return {g.get_attribute("data-name"): g.find_element(By.TAG_NAME, "rect")
                for g in driver.find_elements(By.CSS_SELECTOR, "g.f")}
    return load


def js_errors(driver: webdriver.Chrome) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def text(driver: webdriver.Chrome, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def fill(rect: WebElement) -> tuple[int, ...]:
    m = re.fullmatch(r"rgb\((\d+), (\d+), (\d+)\)", rect.value_of_css_property("fill"))
    assert m, rect.value_of_css_property("fill")
    return tuple(map(int, m.groups()))


def geometry(rects: dict[str, WebElement]) -> dict[str, tuple[float, float]]:
    return {name: (r.rect["x"], r.rect["width"]) for name, r in rects.items()}


def hover(driver: webdriver.Chrome, rect: WebElement) -> str:
    ActionChains(driver).move_to_element(rect).perform()
    return text(driver, "details")


def answer_prompt(driver: webdriver.Chrome, term: str) -> None:
    prompt = WebDriverWait(driver, 5).until(EC.alert_is_present())
    assert "regular expression" in prompt.text
    prompt.send_keys(term)
    prompt.accept()


def test_plain_hover_zoom_escape_and_search(driver, open_svg):
    f = open_svg(render_flamegraph(PLAIN, title="plain"))
    start = geometry(f)
    assert text(driver, "details") == HELP_TEXT
    assert hover(driver, f["parse"]) == "parse \u2014 60 samples, 60.00%"
    assert hover(driver, f["log"]) == "log \u2014 10 samples, 10.00%"
    ActionChains(driver).move_to_element(driver.find_element(By.ID, "title")).perform()
    assert text(driver, "details") == HELP_TEXT

    ActionChains(driver).click(f["handle"]).perform()  # zoom on handle: log is not on its path
    full = f["all"].rect["width"]
    assert f["handle"].rect["width"] == pytest.approx(full, abs=1)
    assert f["handle"].rect["width"] > start["handle"][1] + 50
    assert f["parse"].rect["width"] > start["parse"][1] + 50  # descendants scale with it
    assert f["serialize"].rect["x"] == pytest.approx(f["parse"].rect["x"] + f["parse"].rect["width"], abs=1)
    assert not f["log"].is_displayed()
    assert driver.find_element(By.ID, "unzoom").is_displayed()

    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    assert geometry(f) == start and f["log"].is_displayed()
    assert not driver.find_element(By.ID, "unzoom").is_displayed()

    colours = {name: fill(r) for name, r in f.items()}
    ActionChains(driver).send_keys("/").perform()
    answer_prompt(driver, "handle|parse")
    assert text(driver, "matched") == "Matched: 90.00% of samples for /handle|parse/"  # parse is in handle
    assert fill(f["handle"]) == fill(f["parse"]) == MATCH_FILL
    assert fill(f["serialize"]) == colours["serialize"] != MATCH_FILL and fill(f["log"]) == colours["log"]
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    assert text(driver, "matched") == "" and {n: fill(r) for n, r in f.items()} == colours
    assert js_errors(driver) == []


def test_diff_hover_colours_zoom_reset_control_and_search(driver, open_svg):
    f = open_svg(render_diff_flamegraph(diff_profiles(BASE, CUR), title="diff"))
    start = geometry(f)
    assert hover(driver, f["a"]) == ("a \u2014 320 samples, 80.00% "
                                     "(before 50.00% \u2192 now 80.00%, +30.00 pts)")
    assert hover(driver, f["b"]) == ("b \u2014 40 samples, 10.00% "
                                     "(before 40.00% \u2192 now 10.00%, \u221230.00 pts)")

    (ar, _, ab), (br, _, bb), (cr, _, cb) = fill(f["a"]), fill(f["b"]), fill(f["c"])
    assert ar > ab + 100 and bb > br + 100  # a grew: red; b shrank: blue
    assert cr == cb  # c kept its share: grey

    ActionChains(driver).click(f["c"]).perform()
    assert f["c"].rect["width"] == pytest.approx(f["all"].rect["width"], abs=1)
    assert f["c"].rect["width"] > start["c"][1] * 5
    assert not f["a"].is_displayed() and not f["b"].is_displayed()
    reset = driver.find_element(By.ID, "unzoom")
    assert reset.is_displayed() and reset.text == "Reset zoom"
    ActionChains(driver).click(reset).perform()
    assert geometry(f) == start and f["a"].is_displayed() and f["b"].is_displayed()
    assert not reset.is_displayed()

    colours = {name: fill(r) for name, r in f.items()}
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("f").key_up(Keys.CONTROL).perform()
    answer_prompt(driver, "^[ab]$")
    assert text(driver, "matched") == "Matched: 90.00% of samples for /^[ab]$/"
    assert fill(f["a"]) == fill(f["b"]) == MATCH_FILL and fill(f["c"]) == colours["c"]
    search = driver.find_element(By.ID, "search")
    assert search.text == "Clear search"
    ActionChains(driver).click(search).perform()
    assert text(driver, "matched") == "" and search.text == "Search"
    assert {n: fill(r) for n, r in f.items()} == colours
    assert js_errors(driver) == []
