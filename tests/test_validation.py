"""Client-side mirror of Bitrix24's biconnector validation (reference 5.3-5.5)."""
from __future__ import annotations

import socket

import pytest

from bitrix_app.gateway.addresses import parse_networks
from bitrix_app.services.validation import (
    URL_FIELDS, EndpointPolicy, FieldError, connector_errors, is_integer, source_errors,
)

SETTINGS = [{"name": "Host", "code": "host", "type": "STRING"}, {"name": "Port", "code": "port", "type": "INT"}]


def codes(errors: list[FieldError]) -> list[tuple[str, str]]:
    return [(error.field, error.code) for error in errors]


def test_field_error_is_a_named_tuple():
    error = FieldError("title", "BX_EMPTY_REQUIRED", "x")
    assert error.field == "title" and error.code == "BX_EMPTY_REQUIRED" and tuple(error) == ("title", "BX_EMPTY_REQUIRED", "x")


# --- connectors ------------------------------------------------------------------------------

def test_valid_connector_update_has_no_errors():
    fields = {
        "title": "Warehouse", "description": "", "sort": "200", "logo": "data:image/png;base64,iVBORw0KGgo=",
        "urlCheck": "https://c.example/check", "urlData": "http://c.example/data",
        "urlTableList": "https://c.example/tables", "urlTableDescription": "https://c.example/describe",
        "settings": SETTINGS, "supportMapping": False, "sourceCode": "mysql",
    }
    assert connector_errors(fields) == []


@pytest.mark.parametrize("fields", [{}, None, [], "title"])
def test_fields_must_be_a_non_empty_object(fields):
    assert codes(connector_errors(fields)) == [("fields", "VALIDATION_FIELDS_NOT_PROVIDED")]
    assert codes(source_errors(fields)) == [("fields", "VALIDATION_FIELDS_NOT_PROVIDED")]


def test_unknown_parameters_come_first_and_name_the_key():
    errors = connector_errors({"url_check": "https://x.test", "appId": "a", "title": 5})
    assert codes(errors) == [("url_check", "VALIDATION_UNKNOWN_PARAMETERS"), ("appId", "VALIDATION_UNKNOWN_PARAMETERS"),
                             ("title", "VALIDATION_INVALID_FIELD_TYPE")]
    assert errors[0].message == "Unknown parameters: url_check"


def test_read_only_connector_fields():
    assert codes(connector_errors({"id": 3, "dateCreate": "2024-01-01 00:00:00"})) == [
        ("id", "VALIDATION_READ_ONLY_FIELD"), ("dateCreate", "VALIDATION_READ_ONLY_FIELD")]


@pytest.mark.parametrize("value", [12, "12", " 12 ", "-3", 12.0])
def test_sort_accepts_is_numeric_integers(value):
    assert connector_errors({"sort": value}) == []


@pytest.mark.parametrize("value", [True, "12a", "", None, 1.5, [], 2**40])
def test_sort_rejects_other_values(value):
    assert codes(connector_errors({"sort": value})) == [("sort", "VALIDATION_INVALID_FIELD_TYPE")]


def test_support_mapping_is_a_strict_boolean():
    assert connector_errors({"supportMapping": True}) == []
    for value in (1, "true", "Y", None):
        assert codes(connector_errors({"supportMapping": value})) == [("supportMapping", "VALIDATION_INVALID_FIELD_TYPE")]


def test_title_length_and_emptiness():
    assert connector_errors({"title": "x" * 512}) == []
    assert codes(connector_errors({"title": "x" * 513})) == [("title", "BX_INVALID_VALUE")]
    assert codes(connector_errors({"title": "  "})) == [("title", "BX_EMPTY_REQUIRED")]


def test_urls_must_be_http_and_at_most_2048_characters():
    long_url = "https://c.example/" + "a" * (2048 - len("https://c.example/"))
    assert connector_errors({"urlData": long_url}) == []
    assert codes(connector_errors({"urlData": long_url + "a"})) == [("urlData", "BX_INVALID_VALUE")]
    for bad in ("ftp://c.example/x", "javascript:alert(1)", "c.example/check", "https://"):
        assert codes(connector_errors({"urlCheck": bad})) == [("urlCheck", "INVALID_URL")], bad
    assert codes(connector_errors({"urlTableList": ""})) == [("urlTableList", "BX_EMPTY_REQUIRED")]


def test_logo_is_a_url_or_a_data_image_uri():
    assert connector_errors({"logo": "https://c.example/logo.svg"}) == []
    assert connector_errors({"logo": "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4="}) == []
    assert codes(connector_errors({"logo": "data:text/html;base64,PGI+"})) == [("logo", "INVALID_URL")]


def test_source_code_is_at_most_64_characters():
    assert codes(connector_errors({"sourceCode": "x" * 65})) == [("sourceCode", "BX_INVALID_VALUE")]


def test_empty_settings_list_is_accepted():
    assert connector_errors({"settings": []}) == []


@pytest.mark.parametrize(("row", "expected"), [
    ({"name": "Host", "code": "host"}, ("settings[0]", "VALIDATION_SETTINGS_MISSING_REQUIRED_FIELDS")),
    ({"name": "", "code": "host", "type": "STRING"}, ("settings[0]", "VALIDATION_SETTINGS_MISSING_REQUIRED_FIELDS")),
    ("host", ("settings[0]", "VALIDATION_SETTINGS_MISSING_REQUIRED_FIELDS")),
    ({"name": "x" * 513, "code": "host", "type": "STRING"}, ("settings[0].name", "VALIDATION_SETTINGS_NAME_TOO_LONG")),
    ({"name": "Host", "code": "c" * 513, "type": "STRING"}, ("settings[0].code", "VALIDATION_SETTINGS_CODE_TOO_LONG")),
    ({"name": "Host", "code": "host", "type": "string"}, ("settings[0].type", "VALIDATION_SETTINGS_INVALID_TYPE")),
    ({"name": "Host", "code": "host", "type": "DATE"}, ("settings[0].type", "VALIDATION_SETTINGS_INVALID_TYPE")),
    ({"name": 5, "code": "host", "type": "INT"}, ("settings[0].name", "VALIDATION_INVALID_FIELD_TYPE")),
])
def test_settings_rows_follow_the_servers_four_checks(row, expected):
    assert codes(connector_errors({"settings": [row]})) == [expected]


def test_settings_checks_stop_at_the_first_failure_of_a_row():
    row = {"name": "x" * 600, "code": "c" * 600, "type": "bad"}
    assert codes(connector_errors({"settings": [row]})) == [("settings[0].name", "VALIDATION_SETTINGS_NAME_TOO_LONG")]


def test_setting_keys_are_case_insensitive_like_the_server():
    assert connector_errors({"settings": [{"Name": "Host", "CODE": "host", "Type": "STRING"}]}) == []


def test_duplicate_setting_codes_are_reported():
    rows = [{"name": "A", "code": "host", "type": "STRING"}, {"name": "B", "code": "host", "type": "INT"}]
    assert codes(connector_errors({"settings": rows})) == [("settings[1].code", "DUPLICATE_SETTING_CODE")]


def test_settings_must_be_a_list():
    assert codes(connector_errors({"settings": "host"})) == [("settings", "VALIDATION_INVALID_FIELD_TYPE")]
    assert codes(connector_errors({"settings": {"0": SETTINGS[0]}})) == [("settings", "VALIDATION_INVALID_FIELD_TYPE")]


# --- sources ---------------------------------------------------------------------------------

def test_valid_source_update():
    assert source_errors({"title": "Main", "description": "d", "settings": {"host": "h", "port": "5432"}}, SETTINGS) == []


def test_source_title_is_required_and_non_empty_on_update():
    assert codes(source_errors({"description": "d"})) == [("title", "VALIDATION_REQUIRED_FIELD_MISSING")]
    assert codes(source_errors({"title": ""})) == [("title", "BX_EMPTY_REQUIRED")]
    assert codes(source_errors({"title": "t" * 513})) == [("title", "BX_INVALID_VALUE")]


def test_source_read_only_and_immutable_fields():
    fields = {"title": "t", "id": 1, "type": "rest", "code": "rest_1", "dateCreate": "x", "dateUpdate": "x",
              "createdById": 1, "updatedById": 1, "connectorId": 2}
    assert codes(source_errors(fields)) == [
        ("id", "VALIDATION_READ_ONLY_FIELD"), ("type", "VALIDATION_READ_ONLY_FIELD"), ("code", "VALIDATION_READ_ONLY_FIELD"),
        ("dateCreate", "VALIDATION_READ_ONLY_FIELD"), ("dateUpdate", "VALIDATION_READ_ONLY_FIELD"),
        ("createdById", "VALIDATION_READ_ONLY_FIELD"), ("updatedById", "VALIDATION_READ_ONLY_FIELD"),
        ("connectorId", "VALIDATION_IMMUTABLE_FIELD")]


def test_source_active_must_be_a_real_boolean():
    assert source_errors({"title": "t", "active": False}) == []
    assert codes(source_errors({"title": "t", "active": "N"})) == [("active", "VALIDATION_INVALID_FIELD_TYPE")]


def test_source_settings_are_an_object_of_declared_codes():
    assert codes(source_errors({"title": "t", "settings": ["host"]}, SETTINGS)) == [("settings", "VALIDATION_INVALID_FIELD_TYPE")]
    assert codes(source_errors({"title": "t", "settings": {"user": "x"}}, SETTINGS)) == [("settings.user", "UNKNOWN_SETTING_CODE")]
    # Without the connector's declaration, codes cannot be checked.
    assert source_errors({"title": "t", "settings": {"user": "x"}}) == []


def test_int_settings_must_be_integers():
    assert source_errors({"title": "t", "settings": {"port": 5432}}, SETTINGS) == []
    for bad in ("54x", "", True, 1.5, None):
        assert codes(source_errors({"title": "t", "settings": {"port": bad}}, SETTINGS)) == [
            ("settings.port", "INVALID_SETTING_VALUE")], bad


def test_int_settings_accept_whole_json_numbers():
    assert source_errors({"title": "t", "settings": {"port": 5.0}}, SETTINGS) == []
    [error] = source_errors({"title": "t", "settings": {"port": 5.5}}, SETTINGS)
    assert error.message == 'Setting "port" must be an integer.'


def test_settings_of_an_unknown_type_accept_whole_json_numbers():
    assert source_errors({"title": "t", "settings": {"port": 5.0}}) == []  # no declaration to check against


def test_string_settings_must_be_text():
    assert codes(source_errors({"title": "t", "settings": {"host": {"a": 1}}}, SETTINGS)) == [
        ("settings.host", "INVALID_SETTING_VALUE")]


def test_is_integer_mirrors_is_numeric_for_whole_numbers():
    assert is_integer("0012") and is_integer(-4) and not is_integer(False) and not is_integer("1e3")


@pytest.mark.parametrize("digits", ["\u0661\u0662", "\uff11\uff12", "1\u0662"])  # Arabic-Indic, full-width
def test_is_integer_accepts_only_ascii_digits_like_php(digits):
    assert not is_integer(digits)
    assert codes(connector_errors({"sort": digits})) == [("sort", "VALIDATION_INVALID_FIELD_TYPE")]


# --- where connector URLs may point (EndpointPolicy) ------------------------------------------

class Resolver:
    """getaddrinfo for a few names under .test; records every lookup and never uses the network."""

    def __init__(self, **names: list[str]):
        self.names = names
        self.lookups: list[str] = []

    def __call__(self, host, port, type=None, **_):
        self.lookups.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
                for ip in self.names[host]]


def endpoint_codes(url: str, allowed: str = "", **names) -> list[tuple[str, str]]:
    return codes(EndpointPolicy(parse_networks(allowed), Resolver(**names)).errors({"urlCheck": url}))


@pytest.mark.parametrize("url", [
    "https://93.184.216.34/check", "http://[2606:2800:220:1:248:1893:25c8:1946]:8443/check",
])
def test_public_addresses_are_fine(url):
    assert endpoint_codes(url) == []


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/check", "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/",
    "http://169.254.10.10/", "http://169.254.169.254/latest/", "http://100.64.0.1/", "http://0.0.0.0/",
    "http://[::1]/", "http://[fe80::1]/", "http://[fd00::5]/", "http://[::ffff:10.0.0.1]/",
])
def test_inner_addresses_are_refused(url):
    assert endpoint_codes(url) == [("urlCheck", "ADDRESS_NOT_ALLOWED")]


def test_allowed_networks_open_exactly_what_they_list():
    assert endpoint_codes("http://10.0.0.7/check", allowed="10.0.0.0/24") == []
    assert endpoint_codes("http://10.0.1.7/check", allowed="10.0.0.0/24") == [("urlCheck", "ADDRESS_NOT_ALLOWED")]
    # Allowing link-local does not open the metadata service inside it.
    assert endpoint_codes("http://169.254.169.254/", allowed="169.254.0.0/16") == [("urlCheck", "ADDRESS_NOT_ALLOWED")]


def test_names_are_resolved_and_every_address_must_pass():
    assert endpoint_codes("https://bi.partner.test/check", **{"bi.partner.test": ["93.184.216.34"]}) == []
    mixed = {"rr.partner.test": ["93.184.216.34", "10.0.0.9"]}  # round-robin must not smuggle in 10.0.0.9
    assert endpoint_codes("https://rr.partner.test/check", **mixed) == [("urlCheck", "ADDRESS_NOT_ALLOWED")]
    assert endpoint_codes("https://gone.test/check") == [("urlCheck", "HOST_NOT_RESOLVED")]


def test_ip_literals_and_other_fields_are_never_looked_up():
    resolver = Resolver()
    policy = EndpointPolicy((), resolver)
    assert policy.errors({"urlData": "http://10.0.0.1/", "logo": "https://logo.test/x.svg", "title": "t.test"})
    assert resolver.lookups == []


def test_each_url_field_is_checked_and_named():
    fields = {name: f"http://10.0.0.{index}/" for index, name in enumerate(URL_FIELDS, start=1)}
    assert [field for field, _ in codes(EndpointPolicy().errors(fields))] == list(URL_FIELDS)


def test_a_bad_port_is_an_error_not_a_crash():
    assert endpoint_codes("https://93.184.216.34:99999/check") == [("urlCheck", "INVALID_PORT")]
