"""The documentation site (``docs/_build/html``) renders in a real browser: headless Chromium driven by Selenium.

The test builds nothing: it opens the site that

    python3 -m sphinx -W --keep-going -b html docs docs/_build/html

built (``.ci/run`` builds it before the tests). It serves the folder over HTTP on the loopback interface, from a
thread, and checks the landing page, a lecture with its figures, an API page and a search for "im2col": each page
has its title, every image on it has loaded (``complete`` and ``naturalWidth > 0``), and the browser logged no
error (level SEVERE: a script error, a failed request, a missing file). Screenshots of the landing page and the
lecture go to the test's ``tmp_path``.

It needs the ``docs`` extra (Selenium) and Debian's ``chromium`` and ``chromium-driver``. Without the site or any
of these the tests are skipped, with the reason; when the environment variable ``CI`` is set (``.ci/run`` sets it,
installs them and builds the site) that is a failure instead, never a silent skip.
"""
import functools
import http.server
import importlib
import importlib.util
import os
import pkgutil
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SITE = os.path.join(ROOT, "docs", "_build", "html")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
BUILD = "python3 -m sphinx -W --keep-going -b html docs docs/_build/html"
WAIT_S = 30
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,900")


def missing(message):
    if os.environ.get("CI"):
        pytest.fail(message + "; CI is set, so this is a failure, not a skip")
    pytest.skip(message)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):      # noqa: A002  (the base class's name)
        pass


@pytest.fixture(scope="module")
def built():
    """The folder of the built site."""
    if not os.path.isfile(os.path.join(SITE, "index.html")):
        missing(f"the documentation site is not built (no {os.path.relpath(SITE, ROOT)}/index.html); "
                f"build it with: {BUILD}")
    return SITE


@pytest.fixture(scope="module")
def site(built):
    """The base URL of the built site, served from a thread on 127.0.0.1."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=SITE))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if importlib.util.find_spec("selenium") is None:
        missing("the site's browser test needs Selenium, from the 'docs' extra (pip install -e '.[docs]')")
    absent = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if absent:
        missing(f"the site's browser test needs Debian's Chromium and ChromeDriver; missing: {', '.join(absent)} "
                f"(apt-get install -y --no-install-recommends chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script, what):
    """Wait until the JavaScript expression ``script`` is truthy; fail naming ``what`` otherwise."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(f"return {script};"))
    except TimeoutException:
        pytest.fail(f"{driver.current_url}: timed out after {WAIT_S} s waiting for {what}")


def open_page(driver, url, title):
    """Load ``url``, wait for it and its images, and check the title, the images and the browser's log."""
    driver.get_log("browser")                      # drop what earlier pages logged
    driver.get(url)
    wait_for(driver, "document.readyState === 'complete'", "the page to load")
    assert title in driver.title, f"{url}: title {driver.title!r}, expected it to contain {title!r}"
    wait_for(driver, "Array.from(document.images).every(img => img.complete)", "every image to finish loading")
    images = driver.execute_script(
        "return Array.from(document.images).map(img => [img.currentSrc || img.src, img.naturalWidth]);")
    broken = [src for src, width in images if not width]
    assert not broken, f"{url}: images that did not load: {broken}"
    return images


def assert_no_errors(driver, url):
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, f"{url}: the browser logged errors:\n  " + "\n  ".join(errors)


def test_landing_page(site, browser, tmp_path):
    url = f"{site}/index.html"
    open_page(browser, url, "minception")
    text = browser.find_element("tag name", "article").text
    for needed in ("Inception-v4", "Inception-ResNet-v2", "python3 -m pytest -q tests",
                   "python3 examples/train_cifar_scaled.py"):
        assert needed in text, f"{url}: the landing page does not say {needed!r}"
    links = browser.execute_script("return Array.from(document.querySelectorAll('article a')).map(a => a.href);")
    for page in ("lectures/index.html", "course.html", "inspection.html", "api/index.html"):
        assert any(link.split("#")[0].endswith(page) for link in links), f"{url}: no link to {page}"
    browser.save_screenshot(str(tmp_path / "landing.png"))
    assert_no_errors(browser, url)


def test_lecture_with_its_figures(site, browser, tmp_path):
    url = f"{site}/lectures/07_gradient_flow.html"
    images = open_page(browser, url, "Lecture 7")
    figures = [src for src, _ in images if "favicon" not in src]
    assert len(figures) >= 2, f"{url}: expected the lecture's figures, found images {figures}"
    outputs = browser.find_elements("css selector", "div.cell_output")
    assert outputs, f"{url}: no cell outputs: was the lecture executed when the site was built?"
    api_links = browser.execute_script(
        "return Array.from(document.querySelectorAll('article a.reference')).map(a => a.href)"
        ".filter(h => h.includes('/api/modules/'));")
    assert any("gradient_flow" in link for link in api_links), f"{url}: no link into the API reference"
    browser.save_screenshot(str(tmp_path / "lecture.png"))
    assert_no_errors(browser, url)


def test_api_page(site, browser):
    url = f"{site}/api/modules/ops.html"
    open_page(browser, url, "ops")
    names = browser.execute_script("return Array.from(document.querySelectorAll('dt.sig')).map(dt => dt.id);")
    for name in ("ops.conv2d", "ops.max_pool2d", "ops.batch_norm", "ops.softmax_cross_entropy"):
        assert name in names, f"{url}: {name} is not documented there (found {len(names)} entries)"
    assert_no_errors(browser, url)


def test_search_finds_im2col(site, browser):
    url = f"{site}/search.html?q=im2col"
    open_page(browser, url, "Search")
    count = wait_for(browser, "document.querySelectorAll('#search-results ul.search li').length",
                     "search results for 'im2col'")
    results = browser.find_element("css selector", "#search-results").text
    assert count >= 1 and "im2col" in results, f"{url}: no result for im2col:\n{results[:2000]}"
    assert_no_errors(browser, url)


def test_every_public_module_has_an_api_page(built):
    """Every module of the three packages whose dotted name has no part starting with ``_`` has its page."""
    names = []
    for top in ("autograd", "ops", "minception"):
        names.append(top)
        package = importlib.import_module(top)
        names += [info.name for info in pkgutil.walk_packages(package.__path__, top + ".")
                  if not any(part.startswith("_") for part in info.name.split("."))]
    assert len(names) > 100, names
    absent = [name for name in names if not os.path.isfile(os.path.join(built, "api", "modules", name + ".html"))]
    assert not absent, f"public modules without an API page in {os.path.relpath(built, ROOT)}: {absent}"
