"""Readable sentences for Bitrix24 errors, in English and Russian."""
from __future__ import annotations

import pytest

from bitrix_app.services.errors import BitrixError, OAuthError, PortalUnavailable
from bitrix_app.services.messages import (
    EXPLANATIONS, TEXTS, UI, explain, field_message, normalize_lang, text, ui_texts,
)
from bitrix_app.services.validation import FieldError


@pytest.mark.parametrize(("code", "words"), [
    ("CONNECTOR_NOT_FOUND", "no such connector"),
    ("SOURCE_NOT_FOUND", "no such source"),
    ("SOURCE_UPDATE_CONNECTION_ERROR", "answered with an error status"),
    ("QUERY_LIMIT_EXCEEDED", "too many requests"),
    ("OPERATION_TIME_LIMIT", "processing time"),
    ("ACCESS_DENIED", "BI Builder"),
    ("PORTAL_NEEDS_REAUTH", "Renew authorization"),
    ("NETWORK_ERROR", "could not be reached"),
    ("NETWORK_TIMEOUT", "did not answer in time"),
])
def test_known_codes_become_sentences(code, words):
    sentence = explain(BitrixError(code, "raw"), "en")
    assert words.lower() in sentence.lower()
    assert sentence.endswith(".")


def test_needs_reauth_from_the_token_store_and_from_the_oauth_server():
    assert "Renew authorization" in explain(PortalUnavailable("PORTAL_NEEDS_REAUTH", "x"))
    assert "Renew authorization" in explain(OAuthError("invalid_grant", "refresh token expired"))
    assert "Обновить авторизацию" in explain(PortalUnavailable("PORTAL_NEEDS_REAUTH", "x"), "ru")


def test_the_code_less_title_error_of_source_update():
    error = BitrixError(0, "All the fields are required.")
    assert error.code == "BITRIX_ERROR"
    assert "title" in explain(error, "en")
    assert "название" in explain(error, "ru")


def test_plan_access_denied_differs_from_missing_rights():
    assert "plan" in explain(BitrixError("ACCESS_DENIED", "REST is available only on commercial plans."))


def test_validation_codes_quote_bitrix24s_own_text():
    sentence = explain(BitrixError("VALIDATION_INVALID_FIELD_TYPE", 'Field "sort" must be of type integer.'))
    assert sentence == 'Bitrix24 rejected the data: Field "sort" must be of type integer.'


def test_unknown_codes_fall_back_to_code_and_description():
    assert explain(BitrixError("SOMETHING_NEW", "Odd thing.")) == "Bitrix24 refused the request (SOMETHING_NEW). Odd thing."
    assert explain(BitrixError("SOMETHING_NEW", ""), "ru") == "Битрикс24 отклонил запрос (SOMETHING_NEW)."


def test_html_error_pages():
    assert "error instead of data" in explain(BitrixError("HTTP_502", "Bitrix24 returned an HTTP error."))


def test_every_explanation_and_text_exists_in_both_languages():
    for table in (EXPLANATIONS, TEXTS, UI):
        for key, (english, russian) in table.items():
            assert english and russian and english != russian, key


@pytest.mark.parametrize(("lang", "expected"), [("ru", "ru"), ("RU", "ru"), ("en", "en"), ("de", "en"),
                                                (None, "en"), ("", "en"), ("ua", "en")])
def test_languages(lang, expected):
    assert normalize_lang(lang) == expected


def test_russian_sentences_for_russian_portals():
    assert explain(BitrixError("SOURCE_UPDATE_CONNECTION_ERROR", "Cannot update connection."), "ru").startswith("Битрикс24 не сохранил")
    assert text("READ_ONLY", "ru").startswith("Вы можете просматривать")
    assert ui_texts("ru")["save"] == "Сохранить"


def test_field_messages_are_translated_by_code():
    error = FieldError("urlCheck", "INVALID_URL", 'Field "urlCheck" must be an http:// or https:// URL.')
    assert field_message(error, "en") == error.message
    assert "http://" in field_message(error, "ru") and field_message(error, "ru") != error.message
    unknown = FieldError("x", "NEW_CODE", "Something.")
    assert field_message(unknown, "ru") == "Something."
