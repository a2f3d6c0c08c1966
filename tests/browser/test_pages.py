"""Every page of the built book, as a browser shows it, with the network blocked.

Run by `make test` after the book is built (`make build-strict`), in headless Chromium driven by
Selenium: every formula typeset (no raw TeX left), every image loaded, no code or printed output
running past its box, every web slider changes its picture when moved, the launch buttons open the page's own notebook, and the console shows no
errors. A screenshot of each page's top, and of each slider after it moved, goes to _build/screenshots/.
Without Chromium and its driver the tests are skipped, saying how to install them.
"""
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
INSTALL = ("headless Chromium and its driver are needed for the browser tests: on Debian/Ubuntu "
           "`apt-get install chromium chromium-driver` (.ci/run does it), elsewhere Chrome and chromedriver")


def pages():
    toc = (ROOT / "_toc.yml").read_text()
    names = re.findall(r"^\s*(?:root|- file):\s*(\S+)", toc, re.M)
    return [name + ".html" for name in names]


def find(*names):
    return next((p for p in map(shutil.which, names) if p), None)


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements.txt)")
    from selenium.webdriver.chrome.service import Service
    chrome, driver = find("chromium", "chromium-browser", "google-chrome"), find("chromedriver")
    if not chrome or not driver:
        pytest.skip(INSTALL)
    if not (SITE / "book" / "intro.html").exists():
        pytest.fail("the book is not built: run `make build-strict` first")
    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                "--host-resolver-rules=MAP * ~NOTFOUND"):          # no network: every name fails to resolve
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(driver), options=options)
    d.set_page_load_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield d
    d.quit()


def repo_url():
    return re.search(r"^\s*url:\s*(\S+)", (ROOT / "_config.yml").read_text(), re.M).group(1)


@pytest.mark.parametrize("page", pages())
def test_page_in_a_browser(browser, page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d, name = browser, Path(page).stem
    d.get_log("browser")                                     # start with an empty console
    d.get((SITE / page).as_uri())
    typeset = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (!window.MathJax || !MathJax.startup) { done(document.querySelectorAll('.math').length ? 'no MathJax' : 'none'); return; }"
        "MathJax.startup.promise.then(() => done('ok'), e => done('error: ' + e));")
    assert typeset in ("ok", "none"), f"{page}: MathJax did not run ({typeset})"
    raw = d.execute_script(
        "return [...document.querySelectorAll('span.math, div.math')]"
        ".filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 60));")
    assert not raw, f"{page}: {len(raw)} formulas left as raw TeX, e.g. {raw[:3]}"

    broken = d.execute_script(
        "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => (i.getAttribute('src') || '').slice(0, 80));")
    assert not broken, f"{page}: images that did not load: {broken}"

    if (ROOT / page).with_suffix(".ipynb").exists():        # a chapter: its launch buttons open its notebook
        notebook = str(Path(page).with_suffix(".ipynb"))
        colab = [a.get_attribute("href") for a in d.find_elements(By.CSS_SELECTOR, "a[href*='colab.research.google.com']")]
        want = f"/{'/'.join(repo_url().split('/')[-2:])}/blob/main/{notebook}"
        assert colab and all(href.endswith(want) for href in colab), f"{page}: Colab button {colab}, want ...{want}"

    wide = d.execute_script(
        "return [...document.querySelectorAll('div.cell_input pre, div.cell_output pre')]"
        ".filter(p => p.scrollWidth > p.clientWidth + 1)"
        ".map(p => p.textContent.split('\\n').reduce((a, b) => a.length >= b.length ? a : b).slice(0, 80));")
    assert not wide, f"{page}: {len(wide)} code or output boxes run past their right edge, e.g. {wide[:3]}"

    d.save_screenshot(str(SHOTS / f"{name}.png"))
    for k, slider in enumerate(d.find_elements(By.CSS_SELECTOR, ".dc-slider")):
        img = slider.find_element(By.TAG_NAME, "img")
        for control in slider.find_elements(By.CSS_SELECTOR, "input[type=range]"):
            before = img.get_attribute("src")
            d.execute_script("arguments[0].scrollIntoView({block: 'center'});", control)
            control.send_keys(Keys.END)                      # as a reader would: focus, then a key
            assert img.get_attribute("src") != before, f"{page}: slider {k + 1} ({control.get_attribute('data-name')}) did not change its picture"
        slider.screenshot(str(SHOTS / f"{name}_slider{k + 1}.png"))

    errors = [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"{page}: console errors: {errors[:5]}"
