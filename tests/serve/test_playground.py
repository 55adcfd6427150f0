"""The playground page in a real browser (Debian's chromium + chromium-driver, through Selenium)."""

import itertools
import os
import shutil
import threading
from pathlib import Path

import pytest

from .conftest import Running, free_port, make_models

webdriver = pytest.importorskip("selenium.webdriver")
if not (shutil.which("chromium") and shutil.which("chromedriver")):
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture
def page(tmp_path):
    from gptkit.serve import ServeSettings, create_app, load_served

    paths = make_models(tmp_path)
    app = create_app([load_served(p, dtype="fp32") for p in paths[:2]], ServeSettings(max_batch=2))
    running = Running(app, free_port())
    engine = app.state.schedulers["lm"].engine
    step, steps, stopped = engine.step, itertools.count(), threading.Event()
    # after 10 steps the engine waits for the stop button: the stop lands well before max_tokens, however slow
    engine.step = lambda: (next(steps) < 10 or stopped.wait(60)) and step()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,800"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
    browser.get(running.url + "/")
    browser.stopped = stopped
    yield browser
    browser.quit()
    running.stop()


def test_the_playground_streams_shades_tokens_shows_alternatives_and_stops(page, tmp_path):
    wait = WebDriverWait(page, 30)
    wait.until(lambda b: len(Select(b.find_element(By.ID, "model")).options) == 2)
    Select(page.find_element(By.ID, "model")).select_by_value("lm")
    page.find_element(By.ID, "max_tokens").clear()
    page.find_element(By.ID, "max_tokens").send_keys("90")
    page.find_element(By.ID, "prompt").send_keys("hello world")
    page.find_element(By.ID, "generate").click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#output .tok")) >= 5)  # text streams in
    assert "tokens/s" in page.find_element(By.ID, "status").text
    page.find_element(By.ID, "stop").click()
    wait.until(lambda b: "stopped" in b.find_element(By.ID, "status").text)
    page.stopped.set()
    tokens = page.find_elements(By.CSS_SELECTOR, "#output .tok")
    assert 5 <= len(tokens) < 90  # stopped before max_tokens
    assert page.find_element(By.CSS_SELECTOR, "#output .prompt").text == "hello world"
    assert all(t.value_of_css_property("background-color").startswith("rgba(255, 120, 40") for t in tokens)
    ActionChains(page).move_to_element(tokens[2]).perform()
    tip = page.find_element(By.ID, "tip")
    wait.until(lambda b: tip.is_displayed())
    assert "chosen" in tip.text and 1 <= len(tip.find_elements(By.TAG_NAME, "tr")) <= 5 and "%" in tip.text
    shot = Path(os.environ.get("GPTKIT_PLAYGROUND_SCREENSHOT", tmp_path / "playground.png"))
    page.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
