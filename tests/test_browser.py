"""End to end in a real headless Chromium: the sandbox portal page installs the app, opens its
tab in the `app-frame` iframe, and a person edits a connector and a source there.

Needs Debian's chromium and chromedriver (/usr/bin); the run fails, not skips, without them.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1000")
TIMEOUT = 15


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="tab-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait(driver, condition, timeout: float = TIMEOUT):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def visible(driver, selector: str):
    return wait(driver, EC.visibility_of_element_located((By.CSS_SELECTOR, selector)))


def enter_tab(driver) -> None:
    """Switch into the portal's app iframe and wait until the tab has loaded its list."""
    driver.switch_to.default_content()
    wait(driver, EC.frame_to_be_available_and_switch_to_it((By.ID, "app-frame")))
    visible(driver, ".connector-card")


def replace_text(element, value: str) -> None:
    element.clear()
    element.send_keys(value)


def save_and_wait(driver, form_selector: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f"{form_selector} button[type=submit]").click()
    notice = visible(driver, "#notice.notice-success")
    assert notice.text.startswith("Saved")


def screenshot(driver, name: str, height: int = 1000) -> None:
    """The portal page with the tab in its frame, from the top; leaves the driver outside the frame."""
    ARTIFACTS.mkdir(exist_ok=True)
    driver.switch_to.default_content()
    driver.set_window_size(1280, height)
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(ARTIFACTS / name))
    driver.set_window_size(1280, 1000)


def browser_errors(driver) -> list[str]:
    """JavaScript errors and CSP violations logged by the page (the fake's own page excluded)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "favicon" not in entry["message"]]


def test_admin_installs_the_app_and_edits_a_connector_and_a_source(browser, fake, portal):
    demo = fake.seed_demo(portal)
    browser.get(f"{portal.page_url}?user={portal.admin.id}")

    # The installer runs in the frame; its BX24.installFinish() makes the portal open the tab.
    wait(browser, lambda driver: "view=app" in driver.current_url)
    assert portal.installed
    enter_tab(browser)
    assert "Demo warehouse" in browser.find_element(By.CSS_SELECTOR, ".connector-card").text
    assert [item.text.split("\n")[0] for item in browser.find_elements(By.CSS_SELECTOR, ".source-title")] == [
        "Backup warehouse", "Main warehouse"]

    # Connector: new title; settings table: rename a row, add one, move it up.
    browser.find_element(By.CSS_SELECTOR, ".connector-card .card-head button").click()
    replace_text(visible(browser, "#c-title"), "Warehouse (edited)")
    rows = browser.find_elements(By.CSS_SELECTOR, "#settings-rows tr")
    assert len(rows) == 3
    replace_text(rows[0].find_element(By.NAME, "setting-name"), "Host name")
    browser.find_element(By.CSS_SELECTOR, '[data-action="add-setting"]').click()
    new_row = browser.find_elements(By.CSS_SELECTOR, "#settings-rows tr")[-1]
    new_row.find_element(By.NAME, "setting-name").send_keys("Database")
    new_row.find_element(By.NAME, "setting-code").send_keys("database")
    new_row.find_element(By.CSS_SELECTOR, '[data-action="up"]').click()
    save_and_wait(browser, "#connector-form")
    screenshot(browser, "tab.png", height=1760)  # the whole editor, for the README

    stored = portal.connectors[demo["connector_id"]]
    assert stored["title"] == "Warehouse (edited)"
    assert stored["settings"] == [
        {"name": "Host name", "code": "host", "type": "STRING"},
        {"name": "Port", "code": "port", "type": "INT"},
        {"name": "Database", "code": "database", "type": "STRING"},
        {"name": "API token", "code": "token", "type": "STRING"},
    ]

    # Client-side validation: an invalid URL is shown next to its field and nothing is sent.
    browser.switch_to.frame("app-frame")
    replace_text(browser.find_element(By.ID, "c-urlData"), "ftp://nowhere")
    browser.find_element(By.CSS_SELECTOR, "#connector-form button[type=submit]").click()
    assert "http" in visible(browser, '[data-field="urlData"] .field-error').text
    assert portal.connectors[demo["connector_id"]]["urlData"].startswith("http")

    # Source: the secret is not shown; typing a new value replaces it.
    browser.find_element(By.CSS_SELECTOR, '#connector-editor [data-action="back"]').click()
    main_source = browser.find_element(By.CSS_SELECTOR, f'[data-source-id="{demo["source_ids"][0]}"] button')
    main_source.click()
    token_input = visible(browser, '[data-code="token"]')
    assert token_input.get_attribute("value") == ""
    assert "Value is set" in token_input.get_attribute("placeholder")
    assert "demo-token-1" not in browser.page_source
    token_input.send_keys("rotated-token-42")
    save_and_wait(browser, "#source-form")
    values = {row["code"]: row["value"] for row in portal.sources[demo["source_ids"][0]]["settings"]}
    assert values["token"] == "rotated-token-42" and values["host"] == "wh1.demo.test"
    # The form is rebuilt from the server's answer: the typed secret is gone, the value shows as set.
    assert visible(browser, '[data-code="token"]').get_attribute("value") == ""

    browser.find_element(By.CSS_SELECTOR, '#source-editor [data-action="back"]').click()
    visible(browser, ".connector-card")
    screenshot(browser, "tab-list.png")
    assert browser_errors(browser) == []


def test_a_regular_user_sees_the_tab_read_only(browser, fake, installed_portal):
    demo = fake.seed_demo(installed_portal)
    reader = installed_portal.add_user("Olga Reader")
    browser.get(f"{installed_portal.page_url}?user={reader.id}&view=app")
    enter_tab(browser)
    assert visible(browser, "#read-only-banner")
    assert browser.find_elements(By.ID, "editors-panel") == []
    browser.find_element(By.CSS_SELECTOR, ".connector-card .card-head button").click()
    title = visible(browser, "#c-title")
    assert title.get_attribute("disabled") and title.get_attribute("value") == "Demo warehouse"
    assert not browser.find_element(By.CSS_SELECTOR, "#connector-form button[type=submit]").is_displayed()
    assert not browser.find_element(By.CSS_SELECTOR, '[data-action="add-setting"]').is_displayed()
    screenshot(browser, "tab-read-only.png")
    assert installed_portal.connectors[demo["connector_id"]]["title"] == "Demo warehouse"
    assert browser_errors(browser) == []


def test_the_tab_works_when_bx24_js_cannot_load(browser, fake, installed_portal, app, monkeypatch):
    fake.seed_demo(installed_portal)
    monkeypatch.setitem(app.config, "BITRIX_JS_SDK_URL", "http://127.0.0.1:9/api/v1/")  # nothing listens there
    browser.get(f"{installed_portal.page_url}?user={installed_portal.admin.id}&view=app")
    enter_tab(browser)
    assert "Demo warehouse" in browser.find_element(By.CSS_SELECTOR, ".connector-card").text
    browser.switch_to.default_content()
