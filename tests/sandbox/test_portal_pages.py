"""The portal page in a browser: installer/app iframe forms, the control endpoints, the BX24 shim,
and the demo connector the sandbox seeds."""
from __future__ import annotations

import shutil
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import requests


class FrameForm(HTMLParser):
    """Collects the iframe and the auto-submitted form of a portal page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.iframe: dict | None = None
        self.form: dict | None = None
        self.fields: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "iframe":
            self.iframe = attributes
        elif tag == "form" and attributes.get("target") == "app-frame":
            self.form = attributes
        elif tag == "input" and self.form is not None and attributes.get("type") == "hidden":
            self.fields[attributes["name"]] = attributes["value"]


def page(portal, **params) -> requests.Response:
    return requests.get(portal.page_url, params=params, timeout=10)


def test_admin_sees_the_installer_until_install_is_finished(b24, portal, receiver):
    response = page(portal)

    assert response.status_code == 200 and "Anna Admin" in response.text
    frame = FrameForm(response.text)
    assert frame.iframe["name"] == "app-frame"
    assert frame.form["method"] == "post"
    action = urlsplit(frame.form["action"])
    assert f"{action.scheme}://{action.netloc}{action.path}" == f"{receiver.url}/install"
    query = parse_qs(action.query)
    assert (query["DOMAIN"], query["PROTOCOL"], query["LANG"]) == ([portal.domain], ["0"], ["en"])
    assert frame.fields["PLACEMENT"] == "DEFAULT" and frame.fields["member_id"] == portal.member_id
    profile = requests.get(f"{portal.client_endpoint}profile", params={"auth": frame.fields["AUTH_ID"]}, timeout=10)
    assert profile.json()["result"]["ID"] == "1"


def test_each_render_starts_a_new_token_chain(portal):
    first, second = FrameForm(page(portal).text), FrameForm(page(portal).text)

    assert first.fields["AUTH_ID"] != second.fields["AUTH_ID"]
    assert first.fields["REFRESH_ID"] != second.fields["REFRESH_ID"]


def test_regular_users_wait_for_the_administrator(portal):
    employee = portal.add_user(name="Ivan Petrov")

    response = page(portal, user=employee.id)

    assert "not fully installed yet" in response.text and FrameForm(response.text).form is None
    assert f'href="?user={employee.id}"' in response.text and 'href="?user=1"' in response.text


def test_install_finish_endpoint_then_the_app_tab(b24, portal, receiver):
    employee = portal.add_user(name="Ivan Petrov")
    finished = requests.post(f"{b24.url}/_fake/{portal.domain}/install-finish", timeout=10)

    app_page = page(portal, user=employee.id, view="app")
    home = page(portal, user=employee.id)

    assert finished.json() == {"installed": True} and portal.installed
    frame = FrameForm(app_page.text)
    assert frame.form["action"].startswith(f"{receiver.url}/app?")
    profile = requests.get(f"{portal.client_endpoint}profile", params={"auth": frame.fields["AUTH_ID"]}, timeout=10)
    assert profile.json()["result"]["ID"] == str(employee.id)
    assert 'id="app-menu-item"' in home.text and FrameForm(home.text).form is None


def test_left_menu_placements_open_their_handler(b24, installed, call, receiver):
    call("placement.bind", {"PLACEMENT": "LEFT_MENU", "HANDLER": f"{receiver.url}/menu", "TITLE": "Reports"})
    placement_id = installed.placements[0]["id"]

    home = page(installed)
    opened = FrameForm(page(installed, view="placement", id=placement_id).text)

    assert "Reports" in home.text
    assert opened.form["action"].startswith(f"{receiver.url}/menu?") and opened.fields["PLACEMENT"] == "LEFT_MENU"


def test_after_uninstall_the_admin_can_add_the_app_again(b24, installed):
    old_token = installed.application_token
    b24.uninstall(installed)

    message = page(installed)
    readded = requests.post(f"{b24.url}/_fake/{installed.domain}/install?user=1", timeout=10)

    assert "not installed" in message.text and 'id="reinstall"' in message.text
    assert readded.status_code == 200 and FrameForm(readded.text).form["action"].split("?")[0].endswith("/install")
    assert installed.app_state == "added" and installed.application_token != old_token


def test_frame_auth_endpoint_gives_a_fresh_pair(b24, installed):
    auth = requests.post(f"{b24.url}/_fake/{installed.domain}/auth?user=1", timeout=10).json()

    assert set(auth) == {"AUTH_ID", "REFRESH_ID", "AUTH_EXPIRES"}
    assert requests.get(f"{installed.client_endpoint}profile", params={"auth": auth["AUTH_ID"]},
                        timeout=10).status_code == 200


def test_bx24_shim_is_served(b24):
    response = requests.get(f"{b24.url}/bx24.js", timeout=10)

    assert response.status_code == 200 and "javascript" in response.headers["Content-Type"]
    for name in ("init:", "installFinish:", "fitWindow:", "resizeWindow:", "getAuth:", "getLang:", "isAdmin:",
                 "placement:", "callMethod:", "postMessage"):
        assert name in response.text


def test_page_listens_for_the_shim_messages(portal):
    html = page(portal).text

    for command in ("getInitData", "installFinish", "resizeWindow", "refreshAuth"):
        assert f'"{command}"' in html


class Links(HTMLParser):
    """Every link's href, and the language switch's links by language."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.languages: dict[str, dict] = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "a" and "href" in attributes:
            self.hrefs.append(attributes["href"])
            if "hreflang" in attributes:
                self.languages[attributes["hreflang"]] = attributes


def test_the_language_switch_reopens_the_app_with_lang(installed, receiver):
    english = page(installed, view="app")
    switch = Links(english.text).languages

    assert set(switch) == {"en", "ru"} and switch["en"].get("aria-current") == "true"
    russian_url = switch["ru"]["href"]
    assert parse_qs(urlsplit(russian_url).query) == {"view": ["app"], "lang": ["ru"]}
    russian = requests.get(installed.page_url + russian_url, timeout=10)

    frame = FrameForm(russian.text)
    assert parse_qs(urlsplit(frame.form["action"]).query)["LANG"] == ["ru"]
    assert '<html lang="ru">' in russian.text and Links(russian.text).languages["ru"].get("aria-current") == "true"
    assert parse_qs(urlsplit(FrameForm(english.text).form["action"]).query)["LANG"] == ["en"]
    # Moving around the portal keeps the chosen language.
    links = Links(russian.text)
    switch_links = {attributes["href"] for attributes in links.languages.values()}
    menu_links = [href for href in links.hrefs if href not in switch_links and "view=" in href]
    assert menu_links and all("lang=ru" in href for href in menu_links)


def test_the_language_switch_keeps_the_user_and_placements_get_lang_too(b24, installed, call, receiver):
    employee = installed.add_user(name="Ivan Petrov")
    call("placement.bind", {"PLACEMENT": "LEFT_MENU", "HANDLER": f"{receiver.url}/menu", "TITLE": "Reports"})
    placement_id = installed.placements[0]["id"]

    opened = FrameForm(page(installed, user=employee.id, view="placement", id=placement_id, lang="ru").text)

    assert parse_qs(urlsplit(opened.form["action"]).query)["LANG"] == ["ru"]
    assert opened.fields["PLACEMENT"] == "LEFT_MENU"
    switch = Links(page(installed, user=employee.id, lang="ru").text).languages
    assert parse_qs(urlsplit(switch["en"]["href"]).query) == {"user": [str(employee.id)], "lang": ["en"]}


def test_an_unknown_language_is_a_clear_400(installed):
    response = page(installed, view="app", lang="xx")

    assert response.status_code == 400 and "lang must be one of: en, ru" in response.text
    assert FrameForm(response.text).form is None


def test_unknown_portal_or_user_is_404(b24, portal):
    assert requests.get(f"{b24.url}/nowhere.bitrix24.test/", timeout=10).status_code == 404
    assert page(portal, user=99).status_code == 404


# --- the shim in a real browser ----------------------------------------------------------------

APP_PAGE = """<!doctype html><html><body><div id="out">waiting</div>
<script src="{shim}"></script>
<script>
  var out = document.getElementById("out");
  BX24.init(function () {{
    var auth = BX24.getAuth();
    out.textContent = "init " + auth.domain + " admin=" + BX24.isAdmin() + " placement=" + BX24.placement.info().placement;
    BX24.resizeWindow("100%", 777, function (size) {{ out.textContent += " height=" + size.height; {then} }});
  }});
</script></body></html>"""


@pytest.fixture
def browser():
    from selenium import webdriver  # ./run-tests installs chromium and chromium-driver

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    yield driver
    driver.quit()


def test_install_and_open_through_the_shim_in_a_browser(b24, portal, receiver, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    portal.add_user(name="Ivan Petrov")
    shim = f"{b24.url}/bx24.js"
    receiver.answers["/install"] = (200, APP_PAGE.format(shim=shim, then="BX24.installFinish();"))
    receiver.answers["/app"] = (200, APP_PAGE.format(shim=shim, then=(
        "BX24.callMethod('profile', {}, function (r) { out.textContent += ' profile=' + r.data().ID; "
        "BX24.selectUsers(function (users) { out.textContent += ' picked=' + users.map(function (u) "
        "{ return u.name; }).join(','); }); });")))

    browser.get(portal.page_url)
    WebDriverWait(browser, 10).until(lambda driver: "view=app" in driver.current_url)
    frame = WebDriverWait(browser, 10).until(lambda driver: driver.find_element(By.NAME, "app-frame"))
    picker = WebDriverWait(browser, 10).until(lambda driver: driver.find_element(By.ID, "user-picker").is_displayed()
                                              and driver.find_element(By.ID, "user-picker"))
    picker.find_element(By.CSS_SELECTOR, "input[value='2']").click()
    picker.find_element(By.TAG_NAME, "button").click()
    browser.switch_to.frame(frame)
    text = WebDriverWait(browser, 10).until(
        lambda driver: "picked=" in driver.find_element(By.ID, "out").text and driver.find_element(By.ID, "out").text)

    assert portal.installed
    assert text == f"init {portal.domain} admin=true placement=DEFAULT height=777 profile=1 picked=Ivan Petrov"
    assert [entry["path"] for entry in receiver.requests] == ["/install", "/app"]


# --- demo connector ---------------------------------------------------------------------------

def test_seed_demo_and_the_demo_endpoints(b24, portal, call):
    seeded = b24.seed_demo(portal)
    connector = portal.connectors[seeded["connector_id"]]
    connection = {"connection[host]": "h", "connection[token]": "t"}

    check = requests.post(connector["urlCheck"], data=connection, timeout=10)
    refused = requests.post(connector["urlCheck"], data={"connection[token]": "bad"}, timeout=10)
    tables = requests.post(connector["urlTableList"], data={**connection, "searchString": "ord"}, timeout=10).json()
    columns = requests.post(connector["urlTableDescription"], data={**connection, "table": "public.orders"},
                            timeout=10).json()
    rows = requests.post(connector["urlData"], data={**connection, "table": "public.orders", "select[0]": "CLIENT",
                                                     "select[1]": "ORDER_ID", "mapFields[CUSTOMER]": "CLIENT",
                                                     "limit": 2}, timeout=10).json()

    assert connector["title"] == "Demo warehouse" and [s["code"] for s in connector["settings"]] == ["host", "port", "token"]
    assert len(seeded["source_ids"]) == 2
    assert (check.status_code, check.text) == (200, "OK") and refused.status_code != 200
    assert tables == [{"id": "public.orders", "code": "demo_orders", "title": "Orders"}]
    assert all(column["code"].isupper() and column["name"] and column["type"] for column in columns)
    assert rows == [["CLIENT", "ORDER_ID"], ["Northwind", 1001], ["Contoso", 1002]]


def test_demo_sources_work_through_rest(b24, portal, call):
    seeded = b24.seed_demo(portal)
    first, second = seeded["source_ids"]

    ok = call("biconnector.source.update", {"id": first, "fields": {"title": "Main", "settings": {"port": "1"}}})
    bad = call("biconnector.source.update", {"id": second, "fields": {"title": "Backup", "settings": {"token": "bad"}}})

    assert ok.json()["result"] is True
    assert bad.json()["result"]["error"]["error"] == "SOURCE_UPDATE_CONNECTION_ERROR"
    assert len(call("biconnector.source.list").json()["result"]) == 2
