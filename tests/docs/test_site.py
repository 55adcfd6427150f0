"""The documentation site, built with `mkdocs build --strict` and opened in headless Chromium: the home
page and a Chinese page render, the language switcher goes to the twin, each language's search finds its
own pages only, no code block or table on any page is wider than its column, every nav entry is its page's
title, a chapter's notebook link downloads its notebook, and every page is screenshotted."""

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("mkdocs")
webdriver = pytest.importorskip("selenium.webdriver")
if not (shutil.which("chromium") and shutil.which("chromedriver")):
    pytest.skip("needs Debian's chromium and chromium-driver", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, build.stderr[-3000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Quiet", (handler.func,), {
        "log_message": lambda *a: None}))
    server.RequestHandlerClass = functools.partial(server.RequestHandlerClass, directory=str(out))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
    browser.site_dir = out
    yield browser, f"http://127.0.0.1:{server.server_address[1]}"
    browser.quit()
    server.shutdown()


def _search(browser, query: str) -> list[str]:
    wait = WebDriverWait(browser, 30)
    browser.execute_script("document.querySelector('[data-md-toggle=search]').click()")  # open the search box
    box = browser.find_element(By.CSS_SELECTOR, "input.md-search__input")
    wait.until(lambda b: box.is_displayed())
    box.send_keys(query)
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".md-search-result__item a"))
    links = browser.find_elements(By.CSS_SELECTOR, ".md-search-result__item a")
    return [urlsplit(a.get_attribute("href")).path.rstrip("/") for a in links]  # the pages, without ?h= and #


def test_a_chinese_font_is_installed_for_the_chinese_pages():
    fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True).stdout
    assert fonts.strip(), "no Chinese font: the Chinese pages would show boxes (apt-get install fonts-wqy-microhei)"


def test_the_site_renders_switches_language_and_finds_attention_in_both(site, tmp_path):
    browser, url = site
    browser.get(url + "/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "gptkit"
    browser.get(url + "/attention/")
    WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".katex-display"))  # math typeset
    code = [pre.text for pre in browser.find_elements(By.CSS_SELECTOR, "pre")]
    assert any("def forward" in text for text in code)  # the code, included from the source
    twin = browser.find_element(By.CSS_SELECTOR, "a[hreflang='zh']").get_attribute("href")
    browser.get(twin)  # the language switcher's link
    assert browser.current_url.rstrip("/").endswith("/zh/attention")
    assert "注意力" in browser.find_element(By.TAG_NAME, "h1").text
    browser.get(url + "/zh/learning/")  # a sentence wrapped across two source lines shows no gap
    assert "但可以画一个切面" in browser.find_element(By.TAG_NAME, "article").text
    browser.get(url + "/")
    found = _search(browser, "attention")
    assert "/attention" in found and not any(page.startswith("/zh/") for page in found), found
    browser.get(url + "/")
    found = _search(browser, "KV cache")
    assert found[0] != "/api", found  # the explanation before the page of class names
    browser.get(url + "/zh/")
    found = _search(browser, "注意力")
    assert "/zh/attention" in found and all(page.startswith("/zh/") for page in found), found
    shot = Path(os.environ.get("GPTKIT_DOCS_SCREENSHOT", tmp_path / "site.png"))
    browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:4] == b"\x89PNG"


# a code block (its <code>) or a table whose box ends right of the column, or whose content is wider than its
# box without a scroll bar to reach it
OVERFLOWING = """
const column = document.querySelector('article.md-content__inner').getBoundingClientRect();
return [...document.querySelectorAll('article pre > code, article table')].filter(el => {
  const box = el.getBoundingClientRect();
  const scrolls = ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
  return box.width > 0 && (box.right > column.right + 1 || (el.scrollWidth > el.clientWidth + 1 && !scrolls));
}).map(el => el.innerText.slice(0, 60));
"""


def test_every_page_fits_its_column_and_its_nav_entry_is_its_title(site, tmp_path):
    browser, url = site
    shots = Path(os.environ.get("GPTKIT_DOCS_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    pages = sorted(p.parent.relative_to(browser.site_dir).as_posix() for p in Path(browser.site_dir).rglob("index.html")
                   if p.parent.name not in ("search", "assets", "notebooks"))
    assert len(pages) > 60 and "zh/attention" in pages
    overflowing, misnamed, named = {}, {}, 0
    for page in pages:
        browser.get(f"{url}/{page}/".replace("/./", "/"))
        if found := browser.execute_script(OVERFLOWING):
            overflowing[page] = found
        title = browser.find_element(By.TAG_NAME, "h1").text.strip()
        entry = browser.execute_script(
            "const a = document.querySelector('.md-sidebar--primary .md-nav__link--active');"
            "return a ? a.textContent.trim() : null;")
        named += entry is not None
        if entry is not None and entry != title:
            misnamed[page] = (entry, title)
        browser.save_screenshot(str(shots / f"{page.replace('/', '_') or 'home'}.png"))
    assert overflowing == {}
    assert misnamed == {} and named >= len(pages) - 2  # (the home pages are their own entry)


def test_a_chapters_notebook_link_downloads_its_notebook(site):
    browser, url = site
    for page, words in (("attention", "Attention, step by step"), ("zh/attention", "一步步搭出注意力")):
        browser.get(f"{url}/{page}/")
        link = browser.find_element(By.CSS_SELECTOR, ".notebook-link a").get_attribute("href")
        notebook = json.loads(urllib.request.urlopen(link, timeout=30).read())
        assert notebook["nbformat"] == 4 and words in "".join(notebook["cells"][0]["source"])
        assert any(cell["cell_type"] == "code" for cell in notebook["cells"])
