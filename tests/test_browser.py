"""End to end in a real headless Chromium: the sandbox portal page installs the app, opens its
tab in the `app-frame` iframe, and a person edits a connector and a source there.

Needs Debian's chromium and chromedriver (/usr/bin); the run fails, not skips, without them.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from bitrix_app.sandbox.demo_data import create_demo_database

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
DOCS = PROJECT_ROOT / "docs"
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


def screenshot(driver, name: str, height: int = 1000, folder: Path = ARTIFACTS) -> None:
    """The portal page with the tab in its frame, from the top; leaves the driver outside the frame."""
    folder.mkdir(exist_ok=True)
    driver.switch_to.default_content()
    driver.set_window_size(1280, height)
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(folder / name))
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


def test_a_remote_logo_shows_a_placeholder_and_loads_nothing(browser, fake, installed_portal):
    fake.seed_demo(installed_portal)
    tracked = fake.seed_connector(installed_portal, {
        "title": "Tracked", "logo": "https://tracker.example/pixel.png", "urlCheck": "https://c.example/check",
        "urlTableList": "https://c.example/tables", "urlTableDescription": "https://c.example/describe",
        "urlData": "https://c.example/data", "settings": []})
    browser.get_log("browser")
    browser.get(f"{installed_portal.page_url}?user={installed_portal.admin.id}&view=app")
    enter_tab(browser)
    logo = browser.find_element(By.CSS_SELECTOR, f'[data-connector-id="{tracked}"] .card-logo')
    assert logo.get_attribute("src").startswith("data:image/svg+xml")
    assert "not shown" in logo.get_attribute("title")
    assert browser_errors(browser) == []  # no image was refused by the CSP: none was asked for


def test_an_expired_session_is_renewed_and_the_request_sent_again(browser, fake, installed_portal, app, monkeypatch):
    demo = fake.seed_demo(installed_portal)
    monkeypatch.setitem(app.config, "SESSION_TOKEN_TTL", 1)
    browser.get(f"{installed_portal.page_url}?user={installed_portal.admin.id}&view=app")
    enter_tab(browser)
    browser.execute_script("return new Promise(function (done) { setTimeout(done, 2500); })")  # the token expires
    browser.find_element(By.CSS_SELECTOR, ".connector-card .card-head button").click()
    replace_text(visible(browser, "#c-title"), "Renewed on the way")
    browser.execute_script("return new Promise(function (done) { setTimeout(done, 2500); })")
    save_and_wait(browser, "#connector-form")
    assert installed_portal.connectors[demo["connector_id"]]["title"] == "Renewed on the way"
    browser.switch_to.default_content()


# --- databases served through the connector gateway ---------------------------------------------

def enter_databases(driver) -> None:
    """Switch into the app iframe and wait until the tab has loaded its databases."""
    driver.switch_to.default_content()
    wait(driver, EC.frame_to_be_available_and_switch_to_it((By.ID, "app-frame")))
    wait(driver, lambda d: d.find_element(By.ID, "database-list").get_attribute("aria-busy") == "false")


def database_item(driver):
    return visible(driver, "#database-list .database-item")


def action(root, name: str):
    return root.find_element(By.CSS_SELECTOR, f'[data-action="{name}"]')


def shown(driver, selector: str) -> bool:
    return driver.find_element(By.CSS_SELECTOR, selector).is_displayed()


def demo_file(app) -> Path:
    return create_demo_database(Path(app.config["GATEWAY_SQLITE_DIR"]) / "demo.db")


def open_as(driver, portal, user) -> None:
    """The portal page with the app open as `user`, once the tab has loaded its databases."""
    driver.get_log("browser")  # what earlier tests left in the log is theirs
    driver.get(f"{portal.page_url}?user={user.id}&view=app")
    enter_databases(driver)


def test_admin_adds_tests_edits_and_deletes_a_database(browser, fake, installed_portal, app):
    demo_file(app)
    portal = installed_portal
    open_as(browser, portal, portal.admin)

    # Empty state: what it does, and "Add a database" as the first step.
    empty = visible(browser, "#database-list .empty-state")
    assert "No databases yet" in empty.text
    assert not shown(browser, "#database-add")
    action(empty, "add-database").click()

    # The editor opens with the focus on its first field; the kinds come from the page config.
    kind = visible(browser, "#d-kind")
    assert browser.switch_to.active_element == kind
    kinds = [option.get_attribute("value") for option in Select(kind).options]
    assert kinds[:2] == ["postgresql", "mysql"]
    assert "sqlite" in kinds, "SQLite is not offered: the page config lacks gateway.kinds"
    assert [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "d-tlsMode")).options] == [
        "prefer", "require", "verify-full", "disable"]
    assert browser.find_element(By.ID, "d-schema").get_attribute("placeholder") == "public"
    assert shown(browser, "#d-host") and shown(browser, "#d-password")
    screenshot(browser, "databases-editor-postgresql.png", height=1300)
    enter_databases(browser)
    kind = browser.find_element(By.ID, "d-kind")
    Select(kind).select_by_value("sqlite")
    for name in ("host", "port", "user", "password", "tlsMode"):
        assert not shown(browser, f"#d-{name}"), name
    assert browser.find_element(By.CSS_SELECTOR, 'label[for="d-database"]').text == "File name"
    assert not shown(browser, '[data-field="rotateSecret"]')  # only when editing

    # Checked in the browser first: nothing is sent without a title and a file name.
    browser.find_element(By.CSS_SELECTOR, "#database-form button[type=submit]").click()
    assert visible(browser, '#database-form [data-field="title"] .field-error').text == "Required."
    assert visible(browser, '#database-form [data-field="database"] .field-error').text == "Required."
    assert browser.switch_to.active_element == browser.find_element(By.ID, "d-title")

    # A file that does not exist: the server's connection test fails (422), the field is marked.
    browser.find_element(By.ID, "d-title").send_keys("Demo sales")
    browser.find_element(By.ID, "d-database").send_keys("missing.db")
    browser.find_element(By.CSS_SELECTOR, "#database-form button[type=submit]").click()
    notice = visible(browser, "#notice.notice-error")
    assert "SQLITE_FILE_MISSING" in notice.text and "GATEWAY_SQLITE_DIR" in notice.text
    assert "invalid" in browser.find_element(By.CSS_SELECTOR, '#database-form [data-field="database"]').get_attribute("class")
    assert not [s for s in portal.sources.values() if s["title"] == "Demo sales"]

    # A saved query row, then the real file.
    action(browser, "add-query").click()
    row = visible(browser, "#query-rows li")
    assert browser.switch_to.active_element == row.find_element(By.NAME, "query-title")
    row.find_element(By.NAME, "query-title").send_keys("Big deals")
    row.find_element(By.NAME, "query-sql").send_keys("SELECT id, title, amount FROM deals WHERE amount > 10000")
    assert row.find_element(By.CSS_SELECTOR, '[data-action="remove-query"]').get_attribute("aria-label") == \
        "Remove saved query 1"
    replace_text(browser.find_element(By.ID, "d-database"), "demo.db")
    screenshot(browser, "databases-editor.png", height=1300)  # the 422 from the missing file, still shown
    enter_databases(browser)
    browser.find_element(By.CSS_SELECTOR, "#database-form button[type=submit]").click()
    assert visible(browser, "#notice.notice-success").text.startswith("Database added")

    item = database_item(browser)
    source_id = int(re.search(r"Source #(\d+)", item.text).group(1))
    assert "Demo sales" in item.text and "SQLite" in item.text and "demo.db" in item.text
    assert portal.sources[source_id]["title"] == "Demo sales"
    edit = action(item, "open-database")
    assert edit.get_attribute("aria-label") == "Edit database Demo sales"
    wait(browser, lambda d: d.switch_to.active_element == edit)  # focus is back on the new item
    assert shown(browser, "#database-add")
    screenshot(browser, "databases.png", height=900, folder=DOCS)  # the list with one database, for the README
    enter_databases(browser)

    # Test connection: the result shows next to the item.
    item = database_item(browser)
    action(item, "test-database").click()
    status = wait(browser, lambda d: re.search(r"Connection OK · \d+ tables?", database_item(d).text))
    assert status

    # Edit: the stored values come back; the title changes in the app and in Bitrix24.
    action(database_item(browser), "open-database").click()
    title = visible(browser, "#d-title")
    assert browser.switch_to.active_element == title
    assert browser.find_element(By.ID, "d-kind").get_attribute("disabled")
    assert browser.find_element(By.ID, "d-database").get_attribute("value") == "demo.db"
    assert browser.find_element(By.CSS_SELECTOR, '#query-rows [name="query-title"]').get_attribute("value") == "Big deals"
    assert shown(browser, '[data-field="rotateSecret"]')
    replace_text(title, "Demo sales (edited)")
    browser.find_element(By.CSS_SELECTOR, "#database-form button[type=submit]").click()
    assert visible(browser, "#notice.notice-success").text.startswith("Saved")
    wait(browser, lambda d: "Demo sales (edited)" in database_item(d).text)
    assert portal.sources[source_id]["title"] == "Demo sales (edited)"
    screenshot(browser, "databases.png")
    enter_databases(browser)

    # Deleting asks in place; a source BI Builder datasets use is refused with a sentence.
    table = fake.bi.table_list(portal, source_id)[0]
    dataset_id = fake.bi.create_table(portal, source_id, table["externalCode"])
    item = database_item(browser)
    action(item, "delete-database").click()
    sure = visible(browser, '[data-action="confirm-delete"]')
    assert sure.text == "Delete for good" and browser.switch_to.active_element == sure
    screenshot(browser, "databases-delete.png", height=700)
    enter_databases(browser)
    item = database_item(browser)
    action(item, "keep-database").click()
    assert browser.find_elements(By.CSS_SELECTOR, '[data-action="confirm-delete"]') == []
    assert browser.switch_to.active_element == action(item, "delete-database")
    action(item, "delete-database").click()
    visible(browser, '[data-action="confirm-delete"]').click()
    refused = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".database-status.status-error"))
    assert "Delete all related datasets first" in refused.text and "BX_ERROR" in refused.text
    screenshot(browser, "databases-delete-refused.png")
    enter_databases(browser)
    item = database_item(browser)
    assert source_id in portal.sources

    del portal.tables[dataset_id]
    action(item, "delete-database").click()
    visible(browser, '[data-action="confirm-delete"]').click()
    wait(browser, lambda d: d.find_element(By.ID, "notice").text == "Database “Demo sales (edited)” deleted.")
    visible(browser, "#database-list .empty-state")
    assert source_id not in portal.sources
    # The refusals provoked above (422, 502) are logged by Chromium as failed loads; nothing else may be.
    provoked = re.compile(r"/api/databases(/\d+)? - Failed to load resource: the server responded with a status of "
                          r"(422|502) ")
    assert [error for error in browser_errors(browser) if not provoked.search(error)] == []


def test_a_reader_sees_databases_without_add_test_or_delete(browser, fake, installed_portal, app, open_tab):
    demo_file(app)
    response = open_tab(installed_portal).post("/databases", json={
        "title": "Demo sales", "kind": "sqlite", "database": "demo.db", "tables": ["deals", "companies"]})
    assert response.status_code == 201, response.get_json()
    reader = installed_portal.add_user("Olga Reader", admin=False)
    open_as(browser, installed_portal, reader)

    item = database_item(browser)
    assert "Demo sales" in item.text
    assert [button.text for button in item.find_elements(By.TAG_NAME, "button")] == ["View"]
    assert browser.find_elements(By.ID, "database-add") == []
    view = action(item, "open-database")
    assert view.get_attribute("aria-label") == "View database Demo sales"
    view.click()
    title = visible(browser, "#d-title")
    assert title.get_attribute("disabled") and title.get_attribute("value") == "Demo sales"
    assert browser.find_element(By.ID, "d-tables").get_attribute("value") == "companies\ndeals"
    assert not shown(browser, "#database-form button[type=submit]")
    assert not shown(browser, '[data-action="add-query"]')
    assert not shown(browser, '[data-field="rotateSecret"]')
    screenshot(browser, "databases-read-only.png")
    enter_databases(browser)
    browser.find_element(By.CSS_SELECTOR, '#database-editor [data-action="back"]').click()
    wait(browser, lambda d: d.switch_to.active_element == action(database_item(d), "open-database"))
    assert browser_errors(browser) == []


def test_readers_see_an_empty_state_without_the_first_step(browser, fake, installed_portal):
    reader = installed_portal.add_user("Olga Reader", admin=False)
    open_as(browser, installed_portal, reader)
    empty = visible(browser, "#database-list .empty-state")
    assert empty.text == "No databases yet."
    assert empty.find_elements(By.TAG_NAME, "button") == []
