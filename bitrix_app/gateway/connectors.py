"""The app's own BI Builder connectors: one per enabled database kind, registered on every
portal and kept matching their definition (reference 6.12).

`sync_connectors` is idempotent: it lists the app's connectors, finds ours (the stored id, then
`sourceCode` where the portal knows that field, then the `kind=` marker in our endpoint URLs,
then the title), updates what differs and adds what is missing. A second run changes nothing.
"""
from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field

from sqlalchemy import delete, select

from ..models import GatewayConnector, Portal
from ..services.biconnector import Biconnector, normalize_settings
from ..services.bitrix import Bitrix
from ..services.tokens import portal_by_member_id
from .kinds import KINDS, Kind
from .service import SECRET_SETTING, SOURCE_KEY_SETTING
from .settings import GatewaySettings

TEXTS = {
    "en": {
        "title": "{label} (secure gateway)",
        "description": "Your own {label} database in BI Builder. Add the database in the app's tab: "
                       "the credentials stay in the app, Bitrix24 only holds a source key and a secret.",
        "source_key": "Source key (filled in by the app)",
        "secret": "Secret (filled in by the app)",
    },
    "ru": {
        "title": "{label} (защищённый шлюз)",
        "description": "Ваша база данных {label} в BI-конструкторе. Добавьте базу во вкладке приложения: "
                       "пароли остаются в приложении, Bitrix24 хранит только ключ источника и секрет.",
        "source_key": "Ключ источника (заполняет приложение)",
        "secret": "Секрет (заполняет приложение)",
    },
}
COLOURS = {"postgresql": "#336791", "mysql": "#00758f", "sqlite": "#5a7d9a"}
ENDPOINTS = {"urlCheck": "check", "urlTableList": "tables", "urlTableDescription": "describe", "urlData": "data"}


def logo(kind: Kind) -> str:
    letter = kind.label[0]
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">'
           f'<rect width="64" height="64" rx="12" fill="{COLOURS.get(kind.name, "#2fc6f6")}"/>'
           '<ellipse cx="32" cy="18" rx="18" ry="7" fill="none" stroke="#fff" stroke-width="4"/>'
           '<path d="M14 18v28c0 4 8 7 18 7s18-3 18-7V18" fill="none" stroke="#fff" stroke-width="4"/>'
           f'<text x="32" y="42" font-family="Arial" font-size="18" fill="#fff" text-anchor="middle">{letter}</text>'
           '</svg>')
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def endpoint_urls(public_url: str, portal_key: str, kind: Kind) -> dict[str, str]:
    return {field_name: f"{public_url}/gateway/{portal_key}/{path}?kind={kind.name}"
            for field_name, path in ENDPOINTS.items()}


def definition(kind: Kind, settings: GatewaySettings, portal_key: str, lang: str, known: set[str]) -> dict:
    """The connector as it must look on the portal. `known`: the portal's connector fields."""
    texts = TEXTS.get(lang, TEXTS["en"])
    fields = {
        "title": texts["title"].format(label=kind.label),
        "logo": logo(kind),
        "description": texts["description"].format(label=kind.label),
        "sort": 100,
        **endpoint_urls(settings.public_url, portal_key, kind),
        "settings": [
            {"name": texts["source_key"], "code": SOURCE_KEY_SETTING, "type": "STRING"},
            {"name": texts["secret"], "code": SECRET_SETTING, "type": "STRING"},
        ],
    }
    if "sourceCode" in known and kind.source_code:
        fields["sourceCode"] = kind.source_code
    if "supportMapping" in known:
        fields["supportMapping"] = True  # we follow mapFields for renamed columns
    return fields


@dataclass
class SyncOutcome:
    kind: str
    action: str  # added, updated, unchanged (or would-add / would-update in a dry run)
    connector_id: int | None
    changed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "action": self.action, "connectorId": self.connector_id, "changed": self.changed}


def ensure_gateway_key(bitrix: Bitrix, member_id: str) -> str:
    with bitrix.session_factory() as session, session.begin():
        portal = portal_by_member_id(session, member_id)
        if portal.gateway_key is None:
            portal.gateway_key = secrets.token_urlsafe(24)
        return portal.gateway_key


def sync_connectors(bitrix: Bitrix, settings: GatewaySettings, member_id: str, *, dry_run: bool = False,
                    kinds: tuple[str, ...] | None = None) -> list[SyncOutcome]:
    key = ensure_gateway_key(bitrix, member_id)
    biconnector = bitrix.biconnector(member_id)
    known = {item["title"] for item in biconnector.connector_fields()}
    existing = biconnector.connectors()
    stored = _stored_ids(bitrix, member_id)
    lang = _portal_lang(bitrix, member_id)
    outcomes = []
    claimed: set[int] = set()
    for name in kinds or settings.kinds:
        kind = KINDS[name]
        wanted = definition(kind, settings, key, lang, known)
        current = _match(existing, stored.get(name), kind, wanted, claimed)
        outcome = _apply(biconnector, kind, wanted, current, dry_run)
        if outcome.connector_id is not None:
            claimed.add(outcome.connector_id)
            if not dry_run:
                _store_id(bitrix, member_id, name, outcome.connector_id)
        outcomes.append(outcome)
    return outcomes


def connector_id_for(bitrix: Bitrix, settings: GatewaySettings, member_id: str, kind: str) -> int:
    """The stored connector id of a kind, registering the connector first if needed."""
    stored = _stored_ids(bitrix, member_id).get(kind)
    if stored is not None:
        return stored
    return sync_connectors(bitrix, settings, member_id, kinds=(kind,))[0].connector_id


def forget_connector(bitrix: Bitrix, member_id: str, kind: str) -> None:
    """After CONNECTOR_NOT_FOUND: an administrator deleted it; the next sync registers it again."""
    with bitrix.session_factory() as session, session.begin():
        portal = portal_by_member_id(session, member_id)
        session.execute(delete(GatewayConnector).where(GatewayConnector.portal_id == portal.id,
                                                       GatewayConnector.kind == kind))


def _apply(biconnector: Biconnector, kind: Kind, wanted: dict, current: dict | None, dry_run: bool) -> SyncOutcome:
    if current is None:
        if dry_run:
            return SyncOutcome(kind.name, "would-add", None, sorted(wanted))
        return SyncOutcome(kind.name, "added", biconnector.add_connector(wanted), sorted(wanted))
    changes = {name: value for name, value in wanted.items() if not _same(name, current.get(name), value)}
    if not changes:
        return SyncOutcome(kind.name, "unchanged", current["id"])
    if not dry_run:
        biconnector.update_connector(current["id"], changes)
    return SyncOutcome(kind.name, "would-update" if dry_run else "updated", current["id"], sorted(changes))


def _same(name: str, current, wanted) -> bool:
    if name == "settings":
        return normalize_settings(current) == normalize_settings(wanted)
    if name == "sort":
        return str(current) == str(wanted)
    return current == wanted


def _match(existing: list[dict], stored_id: int | None, kind: Kind, wanted: dict, claimed: set[int]) -> dict | None:
    candidates = [item for item in existing if item.get("id") not in claimed]
    tests = [
        lambda item: stored_id is not None and item.get("id") == stored_id,
        lambda item: bool(kind.source_code) and item.get("sourceCode") == kind.source_code
        and _is_gateway_url(item.get("urlCheck")),
        lambda item: _is_gateway_url(item.get("urlCheck")) and f"kind={kind.name}" in str(item.get("urlCheck")),
        lambda item: item.get("title") in {texts["title"].format(label=kind.label) for texts in TEXTS.values()},
    ]
    for test in tests:
        for item in candidates:
            if test(item):
                return item
    return None


def _is_gateway_url(url) -> bool:
    return isinstance(url, str) and "/gateway/" in url


def _stored_ids(bitrix: Bitrix, member_id: str) -> dict[str, int]:
    with bitrix.session_factory() as session:
        portal = portal_by_member_id(session, member_id)
        rows = session.scalars(select(GatewayConnector).where(GatewayConnector.portal_id == portal.id))
        return {row.kind: row.connector_id for row in rows}


def _store_id(bitrix: Bitrix, member_id: str, kind: str, connector_id: int) -> None:
    with bitrix.session_factory() as session, session.begin():
        portal = portal_by_member_id(session, member_id)
        row = session.scalar(select(GatewayConnector).where(GatewayConnector.portal_id == portal.id,
                                                            GatewayConnector.kind == kind))
        if row is None:
            session.add(GatewayConnector(portal_id=portal.id, kind=kind, connector_id=connector_id))
        elif row.connector_id != connector_id:
            row.connector_id = connector_id


def set_portal_lang(bitrix: Bitrix, member_id: str, lang: str) -> None:
    """The portal's language (installer LANG, ONAPPINSTALL LANGUAGE_ID) titles our connectors."""
    lang = lang.lower()[:2]
    if lang not in TEXTS:
        lang = "en"
    with bitrix.session_factory() as session, session.begin():
        portal = portal_by_member_id(session, member_id)
        if portal is not None:
            portal.lang = lang


def _portal_lang(bitrix: Bitrix, member_id: str) -> str:
    with bitrix.session_factory() as session:
        portal: Portal | None = portal_by_member_id(session, member_id)
        return (portal.lang if portal is not None else None) or "en"

