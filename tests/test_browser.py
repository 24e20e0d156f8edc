"""End to end in a real headless Chromium: the sandbox portal page installs the app, opens its
tab in the `app-frame` iframe, and a person edits a connector and a source there: with the mouse and
with the keyboard only, at 420 px, read-only, through conflicts, history and reverts, creating and
deleting. Screenshots for the README go to docs/, the others to test-artifacts/.

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
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from bitrix_app.models import Portal, PortalStatus
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


@pytest.fixture(autouse=True)
def fresh_log(browser):
    """What earlier tests left in the browser's log is theirs."""
    browser.get_log("browser")


def browser_errors(driver) -> list[str]:
    """JavaScript errors and CSP violations logged by the page (the fake's own page excluded)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "favicon" not in entry["message"]]


def into_frame(driver) -> None:
    driver.switch_to.default_content()
    driver.switch_to.frame("app-frame")


def in_view(driver, element) -> bool:
    """Whether `element` (inside the frame) is inside the frame's viewport, and the frame inside the page's."""
    rect = driver.execute_script("var r = arguments[0].getBoundingClientRect(); "
                                 "return [r.top, r.bottom, window.innerHeight];", element)
    inside_frame = rect[0] >= 0 and rect[1] <= rect[2] + 1
    driver.switch_to.default_content()
    frame = driver.execute_script("var r = document.getElementById('app-frame').getBoundingClientRect(); "
                                  "return [r.top, r.bottom, window.innerHeight];")
    driver.switch_to.frame("app-frame")
    return inside_frame and frame[0] + rect[0] >= 0 and frame[0] + rect[1] <= frame[2] + 1


def settle(driver) -> None:
    """Wait until the frame's height stops changing (tab.js resizes it a moment after the content changed)."""
    def unchanged(d):
        before = d.execute_script("return window.innerHeight")
        d.execute_script("return new Promise(function (done) { setTimeout(done, 150); })")
        return d.execute_script("return window.innerHeight") == before
    wait(driver, unchanged)


def dialog(driver, selector: str = "#confirm-dialog"):
    return wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, f"{selector}[open]"))


def no_dialog(driver) -> bool:
    return driver.find_elements(By.CSS_SELECTOR, "dialog[open]") == []


def labelled(driver, label: str):
    return wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, f'[aria-label="{label}"]'))


def active(driver):
    return driver.switch_to.active_element


def press(driver, *keys) -> None:
    ActionChains(driver).send_keys(*keys).perform()


def test_admin_installs_the_app_and_edits_a_connector_and_a_source(browser, fake, portal):
    demo = fake.seed_demo(portal)
    browser.get(f"{portal.page_url}?user={portal.admin.id}")

    # The installer runs in the frame; its BX24.installFinish() makes the portal open the tab.
    wait(browser, lambda driver: "view=app" in driver.current_url)
    assert portal.installed
    enter_tab(browser)
    card = browser.find_element(By.CSS_SELECTOR, f'[data-connector-id="{demo["connector_id"]}"]')
    assert "Demo warehouse" in card.text
    assert [item.text for item in card.find_elements(By.CSS_SELECTOR, ".source-title")] == [
        "Backup warehouse", "Main warehouse"]
    assert [badge.text for badge in card.find_elements(By.CSS_SELECTOR, ".source-item .badge")] == ["Active", "Active"]

    # Connector: new title; settings table: rename a row, add one, move it up.
    labelled(browser, "Edit connector Demo warehouse").click()
    title = visible(browser, "#c-title")
    assert active(browser) == title  # focus moved into the editor
    replace_text(title, "Warehouse (edited)")
    rows = browser.find_elements(By.CSS_SELECTOR, "#settings-rows tr")
    assert len(rows) == 3
    replace_text(rows[0].find_element(By.NAME, "setting-name"), "Host name")
    browser.find_element(By.CSS_SELECTOR, '[data-action="add-setting"]').click()
    new_row = browser.find_elements(By.CSS_SELECTOR, "#settings-rows tr")[-1]
    assert active(browser) == new_row.find_element(By.NAME, "setting-name")
    new_row.find_element(By.NAME, "setting-name").send_keys("Database")
    new_row.find_element(By.NAME, "setting-code").send_keys("database")
    assert new_row.find_element(By.CSS_SELECTOR, '[data-action="up"]').get_attribute("aria-label") == "Move parameter 4 up"
    new_row.find_element(By.CSS_SELECTOR, '[data-action="up"]').click()
    # The save bar stays on screen while the form is scrolled to its top, and the toast shows after saving.
    browser.execute_script("window.scrollTo(0, 0)")
    save = browser.find_element(By.CSS_SELECTOR, "#connector-form button[type=submit]")
    assert save.text == "Save connector" and in_view(browser, save)
    save.click()
    notice = visible(browser, "#notice.notice-success")
    assert notice.text.startswith("Saved") and in_view(browser, notice)
    screenshot(browser, "tab.png", height=900, folder=DOCS)  # the editor with its save bar and toast, for the README
    into_frame(browser)

    stored = portal.connectors[demo["connector_id"]]
    assert stored["title"] == "Warehouse (edited)"
    assert stored["settings"] == [
        {"name": "Host name", "code": "host", "type": "STRING"},
        {"name": "Port", "code": "port", "type": "INT"},
        {"name": "Database", "code": "database", "type": "STRING"},
        {"name": "API token", "code": "token", "type": "STRING"},
    ]

    # Client-side validation: an invalid URL is shown next to its field and nothing is sent.
    replace_text(browser.find_element(By.ID, "c-urlData"), "ftp://nowhere")
    browser.find_element(By.CSS_SELECTOR, "#connector-form button[type=submit]").click()
    assert "http" in visible(browser, '[data-field="urlData"] .field-error').text
    assert active(browser) == browser.find_element(By.ID, "c-urlData")
    assert portal.connectors[demo["connector_id"]]["urlData"].startswith("http")

    # In the settings table an error marks its own row only, and the focus goes there.
    code = browser.find_elements(By.CSS_SELECTOR, "#settings-rows tr.setting-row")[2].find_element(By.NAME, "setting-code")
    replace_text(code, "host")
    replace_text(browser.find_element(By.ID, "c-urlData"), stored["urlData"])
    browser.find_element(By.CSS_SELECTOR, "#connector-form button[type=submit]").click()
    error = visible(browser, "#settings-rows tr.row-error .field-error")
    assert error.text == "This code is used twice."
    assert active(browser) == code and code.get_attribute("aria-invalid") == "true"
    assert [row.get_attribute("class") for row in browser.find_elements(By.CSS_SELECTOR, "#settings-rows tr")] == [
        "setting-row", "setting-row", "setting-row", "row-error", "setting-row"]
    assert browser.find_elements(By.CSS_SELECTOR, "#settings-rows .invalid") == [code.find_element(By.XPATH, "..")]
    assert "invalid" not in browser.find_element(By.CSS_SELECTOR, '#connector-form [data-field="settings"]').get_attribute("class")
    screenshot(browser, "tab-row-error.png")
    into_frame(browser)

    # Unsaved edits: "Back" asks first; "Keep editing" stays, Esc asks again, "Discard" goes back.
    browser.find_element(By.CSS_SELECTOR, '#connector-editor [data-action="back"]').click()
    question = dialog(browser)
    assert "Discard your changes?" in question.text
    assert active(browser).text == "Keep editing"
    question.find_element(By.CSS_SELECTOR, '[data-answer="no"]').click()
    assert no_dialog(browser) and shown(browser, "#connector-editor")
    press(browser, Keys.ESCAPE)
    dialog(browser).find_element(By.CSS_SELECTOR, '[data-answer="yes"]').click()
    visible(browser, ".connector-card")
    wait(browser, lambda d: active(d).get_attribute("aria-label") == "Edit connector Warehouse (edited)")
    assert portal.connectors[demo["connector_id"]]["settings"][2]["code"] == "database"

    # Source: the secret is not shown, other values are; typing a new value replaces the secret.
    labelled(browser, "Edit source Main warehouse").click()
    token_input = visible(browser, '[data-code="token"]')
    assert token_input.get_attribute("value") == "" and token_input.get_attribute("type") == "password"
    assert "A value is set" in token_input.get_attribute("placeholder")
    assert browser.find_element(By.CSS_SELECTOR, '[data-code="host"]').get_attribute("value") == "wh1.demo.test"
    assert "demo-token-1" not in browser.page_source
    assert browser.find_element(By.CSS_SELECTOR, '#source-editor [data-bind="active"]').text == "Active"
    token_input.send_keys("rotated-token-42")
    save_and_wait(browser, "#source-form")
    values = {row["code"]: row["value"] for row in portal.sources[demo["source_ids"][0]]["settings"]}
    assert values["token"] == "rotated-token-42" and values["host"] == "wh1.demo.test"
    # The form is rebuilt from the server's answer: the typed secret is gone, the value shows as set.
    assert visible(browser, '[data-code="token"]').get_attribute("value") == ""

    # Nothing unsaved now: Esc closes the editor without asking, and the focus is back on the source.
    press(browser, Keys.ESCAPE)
    visible(browser, ".connector-card")
    assert no_dialog(browser)
    assert active(browser).get_attribute("aria-label") == "Edit source Main warehouse"
    screenshot(browser, "tab-list.png")
    assert browser_errors(browser) == []


def test_a_regular_user_sees_values_as_text(browser, fake, installed_portal):
    demo = fake.seed_demo(installed_portal)
    reader = installed_portal.add_user("Olga Reader")
    browser.get(f"{installed_portal.page_url}?user={reader.id}&view=app")
    enter_tab(browser)
    assert visible(browser, "#read-only-banner")
    assert browser.find_elements(By.ID, "editors-panel") == []
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-action="delete-connector"], [data-action="test-source"]')
    labelled(browser, "View connector Demo warehouse").click()
    heading = visible(browser, "#c-heading")
    assert active(browser) == heading
    editor = browser.find_element(By.ID, "connector-editor")
    assert [field for field in editor.find_elements(By.CSS_SELECTOR, "input, textarea, select") if field.is_displayed()] == []
    assert "Demo warehouse" in browser.find_element(By.CSS_SELECTOR, '[data-field="title"] .read-value').text
    assert [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#settings-rows tr:first-child .read-value")] == [
        "Host", "host", "STRING"]
    assert not shown(browser, "#connector-form button[type=submit]")
    assert not shown(browser, '[data-action="add-setting"]')
    screenshot(browser, "tab-read-only.png", folder=DOCS)
    into_frame(browser)
    press(browser, Keys.ESCAPE)
    labelled(browser, "View source Main warehouse").click()
    visible(browser, "#source-settings .read-value")
    values = [value.text for value in browser.find_elements(By.CSS_SELECTOR, "#source-settings .read-value")]
    assert values == ["wh1.demo.test", "5432", "Set (secret, not shown)"]
    assert installed_portal.connectors[demo["connector_id"]]["title"] == "Demo warehouse"
    assert browser_errors(browser) == []


def test_keyboard_only_editing(browser, fake, installed_portal):
    demo = fake.seed_demo(installed_portal)
    browser.get(f"{installed_portal.page_url}?user={installed_portal.admin.id}&view=app")
    enter_tab(browser)
    browser.find_element(By.ID, "list-search").click()
    for _ in range(30):  # Tab from the search box to the connector's edit button
        press(browser, Keys.TAB)
        if active(browser).get_attribute("aria-label") == "Edit connector Demo warehouse":
            break
    edit = active(browser)
    assert edit.get_attribute("aria-label") == "Edit connector Demo warehouse"
    assert edit.value_of_css_property("outline-style") == "solid"  # visible focus
    press(browser, Keys.ENTER)
    title = visible(browser, "#c-title")
    assert active(browser) == title
    press(browser, Keys.END, " (keyboard)", Keys.ENTER)  # Enter in a field submits the form
    assert visible(browser, "#notice.notice-success").text.startswith("Saved")
    assert installed_portal.connectors[demo["connector_id"]]["title"] == "Demo warehouse (keyboard)"
    # The upload button shows its focus too.
    upload = browser.find_element(By.ID, "c-logo-file")
    browser.execute_script("arguments[0].focus()", upload)
    label = upload.find_element(By.XPATH, "..")
    assert label.value_of_css_property("outline-style") == "solid"
    press(browser, Keys.ESCAPE)
    visible(browser, ".connector-card")
    assert active(browser).get_attribute("aria-label") == "Edit connector Demo warehouse (keyboard)"
    assert browser_errors(browser) == []


def test_the_tab_at_420_px(browser, fake, installed_portal):
    fake.seed_demo(installed_portal)
    browser.get(f"{installed_portal.page_url}?user={installed_portal.admin.id}&view=app")
    browser.execute_script("document.getElementById('app-frame').style.maxWidth = '420px'")
    enter_tab(browser)
    assert browser.execute_script("return window.innerWidth") == 420

    def layout_is_readable(root_selector: str) -> None:
        root = browser.find_element(By.CSS_SELECTOR, root_selector)
        widths = {field.get_attribute("id") or field.get_attribute("name"): field.size["width"]
                  for field in root.find_elements(By.CSS_SELECTOR, "input:not([type=checkbox]):not([type=file]), select, textarea")
                  if field.is_displayed()}
        assert widths and min(widths.values()) >= 150, widths
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")  # nothing clipped

    layout_is_readable("#list-view")
    screenshot(browser, "tab-narrow-list.png")
    into_frame(browser)
    labelled(browser, "Edit connector Demo warehouse").click()
    visible(browser, "#c-title")
    layout_is_readable("#connector-editor")
    row = browser.find_element(By.CSS_SELECTOR, "#settings-rows tr.setting-row")
    assert row.value_of_css_property("display") == "block"  # the settings table stacks
    browser.execute_script("arguments[0].scrollIntoView()", row)
    screenshot(browser, "tab-narrow.png", height=900, folder=DOCS)
    into_frame(browser)
    assert browser_errors(browser) == []


def test_search_filter_and_collapsed_sources(browser, fake, installed_portal):
    demo = fake.seed_demo(installed_portal)
    for number in range(1, 7):
        shop = fake.seed_source(installed_portal, {"title": f"Shop {number}", "connectorId": demo["connector_id"]})
        installed_portal.sources[shop]["active"] = number != 3
    browser.get(f"{installed_portal.page_url}?user={installed_portal.admin.id}&view=app")
    enter_tab(browser)
    card = browser.find_element(By.CSS_SELECTOR, f'[data-connector-id="{demo["connector_id"]}"]')
    assert len(card.find_elements(By.CSS_SELECTOR, ".source-item")) == 5  # 8 sources, collapsed
    toggle = card.find_element(By.CSS_SELECTOR, '[data-action="expand-sources"]')
    assert toggle.get_attribute("aria-expanded") == "false"
    assert toggle.get_attribute("aria-label") == "Show all 8 sources of Demo warehouse"
    toggle.click()
    card = browser.find_element(By.CSS_SELECTOR, f'[data-connector-id="{demo["connector_id"]}"]')
    assert len(card.find_elements(By.CSS_SELECTOR, ".source-item")) == 8
    assert active(browser).get_attribute("aria-expanded") == "true"

    browser.find_element(By.ID, "list-search").send_keys("shop")
    titles = [item.text for item in browser.find_elements(By.CSS_SELECTOR, ".source-title")]
    assert titles == [f"Shop {n}" for n in range(1, 7)]
    Select(browser.find_element(By.ID, "list-active")).select_by_value("inactive")
    assert [item.text for item in browser.find_elements(By.CSS_SELECTOR, ".source-title")] == ["Shop 3"]
    assert browser.find_element(By.ID, "filter-status").text == "Shown: 1 of 8 sources"
    Select(browser.find_element(By.ID, "list-active")).select_by_value("")
    replace_text(browser.find_element(By.ID, "list-search"), "no such thing")
    assert "Nothing matches" in browser.find_element(By.ID, "connector-list").text
    browser.find_element(By.ID, "list-search").clear()
    browser.find_element(By.ID, "list-search").send_keys(Keys.BACKSPACE)
    Select(browser.find_element(By.ID, "list-connector")).select_by_visible_text("Demo warehouse")
    assert [c.get_attribute("data-connector-id") for c in browser.find_elements(By.CSS_SELECTOR, ".connector-card")] == [
        str(demo["connector_id"])]

    # The list keeps its scroll position and focus when the editor closes.
    settle(browser)  # the frame has its new height
    last = labelled(browser, "Edit source Shop 6")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", last)
    scrolled = browser.execute_script("return window.scrollY")
    browser.execute_script("arguments[0].click()", last)  # where it is (a WebDriver click scrolls first)
    visible(browser, "#s-title")
    assert browser.execute_script("return window.scrollY") == 0
    press(browser, Keys.ESCAPE)
    visible(browser, ".connector-card")
    assert browser.execute_script("return window.scrollY") == scrolled
    assert active(browser).get_attribute("aria-label") == "Edit source Shop 6"
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
    """The element with `data-action=name`, scrolled to the middle of the frame: WebDriver's own scrolling
    would leave it under the editor's save bar, which stays on screen."""
    element = root.find_element(By.CSS_SELECTOR, f'[data-action="{name}"]')
    element.parent.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    return element


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
    empty = visible(browser, "#welcome .welcome")
    assert "Bring your company's data into BI Builder" in empty.text
    assert not shown(browser, "#databases-panel")  # the welcome offers its first step
    assert not shown(browser, "#database-add")
    action(empty, "welcome-add-database").click()

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
    assert browser.find_element(By.CSS_SELECTOR, 'label[for="d-database"]').text == "File name *"  # required
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
    visible(browser, "#welcome .welcome")
    assert source_id not in portal.sources
    # The refusals provoked above (422, 502) are logged by Chromium as failed loads; nothing else may be.
    provoked = re.compile(r"/api/databases(/\d+)? - Failed to load resource: the server responded with a status of "
                          r"(422|502) ")
    assert [error for error in browser_errors(browser) if not provoked.search(error)] == []


def save_mine_over_theirs(driver, title, form: str):
    """Type "Mine" as the title another admin just saved as "Theirs", save: the conflict dialog shows both."""
    replace_text(title, "Mine")
    driver.find_element(By.CSS_SELECTOR, f"{form} button[type=submit]").click()
    conflict = dialog(driver, "#conflict-dialog")
    assert "Anna Admin saved a change" in conflict.text
    assert [cell.text for cell in conflict.find_elements(By.CSS_SELECTOR, "#conflict-rows td, #conflict-rows th")] == [
        "Title", "Mine", "Theirs"]
    return conflict


def test_a_database_edited_meanwhile_shows_both_versions(browser, fake, installed_portal, app, open_tab):
    demo_file(app)
    portal = installed_portal
    other_admin = open_tab(portal)
    added = other_admin.post("/databases", json={"title": "Demo sales", "kind": "sqlite", "database": "demo.db"})
    database_id, source_id = added.get_json()["result"]["id"], added.get_json()["result"]["sourceId"]
    open_as(browser, portal, portal.admin)
    action(database_item(browser), "open-database").click()
    title = visible(browser, "#d-title")
    assert "by Anna Admin (in the tab)" in visible(browser, '#database-editor [data-bind="last-change"]').text
    assert other_admin.patch(f"/databases/{database_id}", json={"title": "Theirs"}).status_code == 200
    conflict = save_mine_over_theirs(browser, title, "#database-form")
    assert portal.sources[source_id]["title"] == "Theirs"  # nothing was overwritten yet
    conflict.find_element(By.CSS_SELECTOR, '[data-answer="mine"]').click()
    assert visible(browser, "#notice.notice-success").text.startswith("Saved")
    wait(browser, lambda d: "Mine" in database_item(d).text)
    assert portal.sources[source_id]["title"] == "Mine"

    # The database's changes are in its source's history, under the database's own field names.
    labelled(browser, "Edit source Mine").click()
    entries = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#source-editor .history-entry")[2:] and
                   d.find_elements(By.CSS_SELECTOR, "#source-editor .history-entry"))
    assert "Title: Theirs → Mine" in entries[0].text
    assert not entries[0].find_elements(By.CSS_SELECTOR, "[data-action=revert]")
    provoked = re.compile(r"/api/databases/\d+ - Failed to load resource: .* status of 409 ")
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
    # Values as text, not greyed-out inputs; the password only says whether it is set.
    assert visible(browser, '#database-form [data-field="title"] .read-value').text == "Demo sales"
    assert not shown(browser, "#d-title")
    assert browser.find_element(By.CSS_SELECTOR, '#database-form [data-field="tables"] .read-value').text == \
        "companies\ndeals"
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
    empty = visible(browser, "#welcome .welcome")
    assert "A portal administrator can add a database or a custom connector." in empty.text
    assert empty.find_elements(By.TAG_NAME, "button") == []


# --- creating, deleting, testing; conflicts and history (issue 9) -------------------------------

def fill_custom_connector(driver, fake, title: str) -> None:
    base = f"{fake.url}/_demo_connector"
    replace_text(visible(driver, "#c-title"), title)
    driver.find_element(By.ID, "c-logo").send_keys("https://partner.test/logo.svg")
    for name, path in (("urlCheck", "check"), ("urlTableList", "table_list"),
                       ("urlTableDescription", "table_description"), ("urlData", "data")):
        driver.find_element(By.ID, f"c-{name}").send_keys(f"{base}/{path}")
    for name, code in (("Host", "host"), ("API token", "token")):
        action(driver, "add-setting").click()
        row = driver.find_elements(By.CSS_SELECTOR, "#settings-rows tr.setting-row")[-1]
        row.find_element(By.NAME, "setting-name").send_keys(name)
        row.find_element(By.NAME, "setting-code").send_keys(code)


def test_create_edit_conflict_history_and_revert(browser, fake, installed_portal, open_tab):
    portal = installed_portal
    browser.get(f"{portal.page_url}?user={portal.admin.id}&view=app")
    browser.switch_to.default_content()
    wait(browser, EC.frame_to_be_available_and_switch_to_it((By.ID, "app-frame")))

    # Nothing set up yet: the page says what the app does and offers the first steps.
    welcome = visible(browser, "#welcome .welcome")
    assert "Bring your company's data into BI Builder" in welcome.text
    assert [b.text for b in welcome.find_elements(By.TAG_NAME, "button")] == ["Add a database", "Add a custom connector"]
    screenshot(browser, "tab-empty.png", folder=DOCS)
    into_frame(browser)
    action(browser, "welcome-add-connector").click()
    assert active(browser) == visible(browser, "#c-title")
    fill_custom_connector(browser, fake, "Partner warehouse")
    save = browser.find_element(By.CSS_SELECTOR, "#connector-form button[type=submit]")
    save.click()
    assert visible(browser, "#notice.notice-success").text.startswith("Connector added")
    created = [c for c in portal.connectors.values() if c["title"] == "Partner warehouse"]
    assert len(created) == 1 and created[0]["settings"][1]["code"] == "token"
    connector_id = created[0]["id"]
    assert browser.find_element(By.ID, "c-secretSettings").get_attribute("value") == "token"  # the default rule
    assert "by Anna Admin (in the tab)" in visible(browser, '#connector-editor [data-bind="last-change"]').text
    press(browser, Keys.ESCAPE)

    # A source on it: the non-secret value is shown afterwards, the secret is not.
    labelled(browser, "Add a source to connector Partner warehouse").click()
    replace_text(visible(browser, "#s-title"), "Partner A")
    browser.find_element(By.CSS_SELECTOR, '[data-code="host"]').send_keys("a.partner.test")
    browser.find_element(By.CSS_SELECTOR, '[data-code="token"]').send_keys("partner-secret")
    browser.find_element(By.CSS_SELECTOR, "#source-form button[type=submit]").click()
    assert visible(browser, "#notice.notice-success").text.startswith("Source added")
    source = [s for s in portal.sources.values() if s["title"] == "Partner A"][0]
    assert browser.find_element(By.CSS_SELECTOR, '[data-code="host"]').get_attribute("value") == "a.partner.test"
    assert "partner-secret" not in browser.page_source
    press(browser, Keys.ESCAPE)
    wait(browser, lambda d: active(d).get_attribute("aria-label") == "Edit source Partner A")

    # Test connection: the answer shows under the source.
    action(browser, "test-source").click()
    status = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, f'[data-source-id="{source["id"]}"] .status-ok'))
    assert "Bitrix24 can use this source" in status.text

    # Someone else renames the connector while it is open here: saving shows both versions.
    labelled(browser, "Edit connector Partner warehouse").click()
    title = visible(browser, "#c-title")
    other_admin = open_tab(portal)
    response = other_admin.post(f"/connectors/{connector_id}", json={"fields": {"title": "Theirs"}})
    assert response.status_code == 200, response.get_json()
    conflict = save_mine_over_theirs(browser, title, "#connector-form")
    screenshot(browser, "tab-conflict.png", folder=DOCS)
    into_frame(browser)
    assert portal.connectors[connector_id]["title"] == "Theirs"  # nothing was overwritten yet
    # "Keep theirs": the form shows the saved version.
    conflict.find_element(By.CSS_SELECTOR, '[data-answer="theirs"]').click()
    assert no_dialog(browser)
    assert browser.find_element(By.ID, "c-title").get_attribute("value") == "Theirs"
    assert visible(browser, "#notice.notice-info").text.startswith("Their version is loaded")
    # Again, and this time "Overwrite with mine".
    response = other_admin.post(f"/connectors/{connector_id}", json={"fields": {"title": "Theirs again"}})
    assert response.status_code == 200, response.get_json()
    replace_text(browser.find_element(By.ID, "c-title"), "Mine")
    browser.find_element(By.CSS_SELECTOR, "#connector-form button[type=submit]").click()
    dialog(browser, "#conflict-dialog").find_element(By.CSS_SELECTOR, '[data-answer="mine"]').click()
    wait(browser, lambda d: d.find_element(By.ID, "notice").text.startswith("Saved"))
    assert portal.connectors[connector_id]["title"] == "Mine"

    # History, newest first, with a one-click revert of the last change.
    entries = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#connector-editor .history-entry")[3:] and
                   d.find_elements(By.CSS_SELECTOR, "#connector-editor .history-entry"))
    assert "Title: Theirs again → Mine" in entries[0].text
    assert "Created" in entries[-1].text
    revert = entries[0].find_element(By.CSS_SELECTOR, '[data-action="revert"]')
    assert revert.get_attribute("aria-label").startswith("Revert the change of")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", revert)
    screenshot(browser, "tab-history.png", folder=DOCS)
    into_frame(browser)
    revert = browser.find_elements(By.CSS_SELECTOR, "#connector-editor .history-entry [data-action=revert]")[0]
    revert.click()
    wait(browser, lambda d: d.find_element(By.ID, "notice").text == "Change reverted.")
    assert portal.connectors[connector_id]["title"] == "Theirs again"
    assert browser.find_element(By.ID, "c-title").get_attribute("value") == "Theirs again"
    # The two conflicts provoked above are logged by Chromium as failed loads; nothing else may be.
    provoked = re.compile(r"/api/connectors/\d+ - Failed to load resource: .* status of 409 ")
    assert [error for error in browser_errors(browser) if not provoked.search(error)] == []


def test_deleting_asks_first_and_explains_bitrix24s_refusals(browser, fake, installed_portal, open_tab):
    portal = installed_portal
    demo = fake.seed_demo(portal)
    open_tab(portal)  # the app has seen the portal's user names
    table = fake.seed_table(portal, demo["source_ids"][0])
    browser.get(f"{portal.page_url}?user={portal.admin.id}&view=app")
    enter_tab(browser)
    # The gateway's own connectors are managed through databases: no delete or add-source here.
    gateway = [c for c in browser.find_elements(By.CSS_SELECTOR, ".connector-card")
               if c.get_attribute("data-connector-id") != str(demo["connector_id"])]
    assert gateway and all(not c.find_elements(By.CSS_SELECTOR, '[data-action="delete-connector"]') for c in gateway)

    # Deleting a connector with sources: asked first, then Bitrix24's refusal as a sentence.
    remove = labelled(browser, "Delete connector Demo warehouse")
    remove.click()
    question = dialog(browser)
    assert question.find_element(By.ID, "confirm-title").text == "Delete connector “Demo warehouse”?"
    assert active(browser).text == "Cancel"  # the safe answer has the focus
    screenshot(browser, "tab-delete.png", folder=DOCS)
    into_frame(browser)
    press(browser, Keys.ESCAPE)  # Esc closes the question only
    assert no_dialog(browser) and demo["connector_id"] in portal.connectors
    labelled(browser, "Delete connector Demo warehouse").click()
    dialog(browser).find_element(By.CSS_SELECTOR, '[data-answer="yes"]').click()
    notice = visible(browser, "#notice.notice-error")
    assert "Delete the connector's sources first" in notice.text and "CONNECTOR_DELETE_RESTRICTED" in notice.text
    assert demo["connector_id"] in portal.connectors

    # A source used by a dataset is kept, with what to do.
    labelled(browser, "Delete source Main warehouse").click()
    dialog(browser).find_element(By.CSS_SELECTOR, '[data-answer="yes"]').click()
    refused = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR,
                                                     f'[data-source-id="{demo["source_ids"][0]}"] .status-error'))
    assert "Delete those datasets in BI Builder first" in refused.text and "SOURCE_IN_USE" in refused.text
    del portal.tables[table]

    for source_id, title in zip(demo["source_ids"], ("Main warehouse", "Backup warehouse")):
        labelled(browser, f"Delete source {title}").click()
        dialog(browser).find_element(By.CSS_SELECTOR, '[data-answer="yes"]').click()
        wait(browser, lambda d: d.find_element(By.ID, "notice").text == f"Source “{title}” deleted.")
        assert source_id not in portal.sources
    labelled(browser, "Delete connector Demo warehouse").click()
    dialog(browser).find_element(By.CSS_SELECTOR, '[data-answer="yes"]').click()
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, f'[data-connector-id="{demo["connector_id"]}"]'))
    assert demo["connector_id"] not in portal.connectors
    assert active(browser) == browser.find_element(By.ID, "connectors-heading")
    provoked = re.compile(r"/api/(connectors|sources)/\d+ - Failed to load resource: .* status of 409 ")
    assert [error for error in browser_errors(browser) if not provoked.search(error)] == []


def test_who_can_edit_picks_users_by_name(browser, fake, installed_portal):
    portal = installed_portal
    fake.seed_demo(portal)
    olga = portal.add_user("Olga Reader", admin=False)
    browser.get(f"{portal.page_url}?user={portal.admin.id}&view=app")
    enter_tab(browser)
    panel = browser.find_element(By.ID, "editors-panel")
    assert panel.location["y"] < browser.find_element(By.ID, "databases-panel").location["y"]  # near the top
    panel.find_element(By.TAG_NAME, "summary").click()
    browser.find_element(By.ID, "editor-search").send_keys("Olga", Keys.ENTER)
    labelled(browser, "Allow Olga Reader to edit").click()
    wait(browser, lambda d: "Olga Reader" in d.find_element(By.ID, "editor-list").text)
    assert "Olga Reader" in browser.find_element(By.ID, "editors-summary").text
    with_names = browser.find_element(By.ID, "editor-list").text
    assert f"Olga Reader #{olga.id}" in with_names
    screenshot(browser, "tab-editors.png", folder=DOCS)  # for the README
    into_frame(browser)
    labelled(browser, "Remove Olga Reader from the editors").click()
    wait(browser, lambda d: "Only administrators" in d.find_element(By.ID, "editor-list").text)
    assert browser_errors(browser) == []


def test_who_can_edit_refuses_a_user_gone_from_the_portal_and_keeps_names(browser, fake, installed_portal, app):
    portal = installed_portal
    fake.seed_demo(portal)
    olga = portal.add_user("Olga Reader", admin=False)
    ivan = portal.add_user("Ivan Gone", admin=False)
    browser.get(f"{portal.page_url}?user={portal.admin.id}&view=app")
    enter_tab(browser)
    browser.find_element(By.CSS_SELECTOR, "#editors-panel summary").click()
    browser.find_element(By.ID, "editor-search").send_keys("Olga", Keys.ENTER)
    labelled(browser, "Allow Olga Reader to edit").click()
    wait(browser, lambda d: f"Olga Reader #{olga.id}" in d.find_element(By.ID, "editor-list").text)
    search = browser.find_element(By.ID, "editor-search")
    search.clear()
    search.send_keys("Ivan", Keys.ENTER)
    allow = labelled(browser, "Allow Ivan Gone to edit")
    del portal.users[ivan.id]  # deleted on the portal after the search found him

    allow.click()

    error = wait(browser, lambda d: d.find_element(By.ID, "editor-error").is_displayed()
                 and d.find_element(By.ID, "editor-error"))
    assert f"These user ids do not exist on the portal: {ivan.id}." in error.text and "UNKNOWN_USERS" in error.text
    assert browser.find_element(By.ID, "editor-list").text.splitlines()[0] == f"Olga Reader #{olga.id}"
    assert portal_editor_ids(app, portal) == [olga.id]
    provoked = re.compile(r"/api/editors - Failed to load resource: .* status of 400 ")
    assert [error for error in browser_errors(browser) if not provoked.search(error)] == []


def portal_editor_ids(app, portal) -> list[int]:
    from bitrix_app.models import Portal as PortalRow

    with app.extensions["bitrix"].session_factory() as session:
        return list(session.query(PortalRow).filter_by(member_id=portal.member_id).one().editor_user_ids or [])


def test_the_page_takes_the_gateway_flag_from_the_server(browser, fake, installed_portal, app, open_tab):
    """The app's own objects lose delete and add-source; a custom connector keeps them even when its
    URLs look like the gateway's (the page used to guess from the check URL)."""
    demo_file(app)
    portal = installed_portal
    added = open_tab(portal).post("/databases", json={"title": "Demo sales", "kind": "sqlite", "database": "demo.db"})
    assert added.status_code == 201, added.get_json()
    source_id = added.get_json()["result"]["sourceId"]
    lookalike = fake.seed_connector(portal, {
        "title": "Look-alike", "logo": "", "settings": [],
        **{name: f"{app.live_url}/gateway/elsewhere/{name}"
           for name in ("urlCheck", "urlTableList", "urlTableDescription", "urlData")}})
    open_as(browser, portal, portal.admin)

    own = visible(browser, f'[data-source-id="{source_id}"]')  # the connector list loads on its own
    assert own.find_elements(By.CSS_SELECTOR, '[data-action="test-source"]')
    assert not own.find_elements(By.CSS_SELECTOR, '[data-action="delete-source"]')
    card = browser.find_element(By.CSS_SELECTOR, f'.connector-card[data-connector-id="{lookalike}"]')
    assert card.find_elements(By.CSS_SELECTOR, '[data-action="delete-connector"]')
    assert card.find_elements(By.CSS_SELECTOR, '[data-action="add-source"]')

    # Its source opens read-only, saying where it is changed.
    action(own, "open-source").click()
    note = visible(browser, '#source-editor [data-bind="gateway-note"]')
    assert "change it in the Databases part" in note.text
    assert not shown(browser, "#source-editor .save-bar")
    assert visible(browser, "#source-editor .read-value").text == "Demo sales"
    assert [field for field in browser.find_elements(By.CSS_SELECTOR, "#source-form input, #source-form textarea")
            if field.is_displayed()] == []
    assert browser_errors(browser) == []


@pytest.mark.parametrize("as_admin", [True, False])
def test_a_dead_authorization_shows_one_message(browser, fake, installed_portal, bitrix, as_admin):
    portal = installed_portal
    fake.seed_demo(portal)
    with bitrix.session_factory() as db, db.begin():
        db.query(Portal).filter_by(member_id=portal.member_id).one().status = PortalStatus.NEEDS_REAUTH
    user = portal.admin if as_admin else portal.add_user("Olga Reader", admin=False)
    browser.get(f"{portal.page_url}?user={user.id}&view=app")
    browser.switch_to.default_content()
    wait(browser, EC.frame_to_be_available_and_switch_to_it((By.ID, "app-frame")))
    banner = visible(browser, "#reauth-banner")
    messages = [node for node in browser.find_elements(By.CSS_SELECTOR, ".banner, .notice, .list-error")
                if node.is_displayed()]
    assert messages == [banner]
    assert not shown(browser, "#tab-main")
    buttons = banner.find_elements(By.TAG_NAME, "button")
    if not as_admin:
        assert buttons == [] and "A portal administrator can restore it" in banner.text
        return
    assert [b.text for b in buttons] == ["Renew authorization"]
    screenshot(browser, "tab-reauth.png")
    into_frame(browser)
    buttons[0].click()
    visible(browser, ".connector-card")
    assert not shown(browser, "#reauth-banner")
    assert visible(browser, "#notice.notice-success").text == "Authorization renewed."


def test_an_administrator_chooses_which_settings_are_secret(browser, fake, installed_portal):
    demo = fake.seed_demo(installed_portal)
    browser.get(f"{installed_portal.page_url}?user={installed_portal.admin.id}&view=app")
    enter_tab(browser)
    labelled(browser, "Edit connector Demo warehouse").click()
    secrets = visible(browser, "#c-secretSettings")
    assert secrets.get_attribute("value") == "token"  # the default rule
    secrets.send_keys("\nhost")
    save_and_wait(browser, "#connector-form")
    press(browser, Keys.ESCAPE)
    labelled(browser, "Edit source Main warehouse").click()
    host = visible(browser, '[data-code="host"]')
    assert host.get_attribute("type") == "password" and host.get_attribute("value") == ""
    assert host.get_attribute("placeholder") == "Secret. A value is set; type a new one to replace it."
    assert browser.find_element(By.CSS_SELECTOR, '[data-code="port"]').get_attribute("value") == "5432"
    assert "wh1.demo.test" not in browser.page_source
    assert installed_portal.sources[demo["source_ids"][0]]["settings"][0]["value"] == "wh1.demo.test"  # unchanged
    assert browser_errors(browser) == []
