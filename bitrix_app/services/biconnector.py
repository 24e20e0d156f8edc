"""Typed helpers for BI Builder connectors and sources (`biconnector.connector.*`, `biconnector.source.*`)."""
from __future__ import annotations

from typing import TypedDict

from .rest import Along, BatchResult, BitrixClient


class ConnectorSetting(TypedDict):
    name: str
    code: str
    type: str  # "STRING" or "INT", case-sensitive


class Connector(TypedDict, total=False):
    id: int
    title: str
    description: str
    logo: str
    sort: int
    urlCheck: str
    urlData: str
    urlTableList: str
    urlTableDescription: str
    settings: list[ConnectorSetting]
    dateCreate: str
    supportMapping: bool
    sourceCode: str


class SourceSetting(TypedDict, total=False):
    code: str
    name: str
    type: str
    value: str  # plain text, secrets included: never send to a browser


class Source(TypedDict, total=False):
    id: int
    title: str
    description: str
    type: str
    code: str
    active: bool
    connectorId: int
    dateCreate: str
    dateUpdate: str
    createdById: int
    updatedById: int
    settings: list[SourceSetting]


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def normalize_settings(settings) -> list[ConnectorSetting]:
    """Connector settings as Bitrix24 stores them: `{name, code, type}`, key case ignored
    (Bitrix24 converts the keys to upper snake case first, so "Name" and "name" collapse)."""
    rows = []
    for row in settings or []:
        lower = {str(key).lower(): value for key, value in row.items()} if isinstance(row, dict) else {}
        rows.append({"name": lower.get("name"), "code": lower.get("code"), "type": lower.get("type")})
    return rows  # type: ignore[return-value]


def normalize_connector(item: dict) -> Connector:
    item = dict(item)
    for key in ("id", "sort"):
        if key in item:
            item[key] = _int(item[key])
    item["settings"] = list(item.get("settings") or [])
    return item  # type: ignore[return-value]


def normalize_source(item: dict) -> Source:
    """`source.get` nests the source under `connection`; `source.list` items are flat."""
    if isinstance(item.get("connection"), dict):
        item = {**item["connection"], "connectorId": item.get("connectorId"), "settings": item.get("settings")}
    item = dict(item)
    for key in ("id", "connectorId", "createdById", "updatedById"):
        if key in item:
            item[key] = _int(item[key])
    item["settings"] = [
        {key: value for key, value in setting.items() if key != "id"} for setting in item.get("settings") or []
    ]
    return item  # type: ignore[return-value]


class _Normalizing:
    """Hands an `Along` the connectors and sources read so far, normalized."""

    def __init__(self, along: Along):
        self.along = along

    def commands(self, read: dict[str, list], more: set[str]) -> dict[str, tuple[str, dict]]:
        return self.along.commands({"connectors": [normalize_connector(item) for item in read["connectors"]],
                                    "sources": [normalize_source(item) for item in read["sources"]]}, more)

    def take(self, outcome: BatchResult) -> None:
        self.along.take(outcome)


class Biconnector:
    def __init__(self, client: BitrixClient):
        self.client = client

    # Connectors
    def connectors(self, **params) -> list[Connector]:
        return [normalize_connector(item) for item in self.client.list_all("biconnector.connector.list", params)]

    def connector(self, connector_id: int) -> Connector:
        return normalize_connector(self.client.call("biconnector.connector.get", {"id": connector_id})["item"])

    def connector_fields(self) -> list[dict]:
        return self.client.call("biconnector.connector.fields")["fields"]

    def add_connector(self, fields: dict) -> int:
        return int(self.client.call("biconnector.connector.add", {"fields": fields})["id"])

    def update_connector(self, connector_id: int, fields: dict) -> bool:
        """`settings`, if given, replaces the stored list wholesale: pass the complete table."""
        return self.client.call("biconnector.connector.update", {"id": connector_id, "fields": fields}) is True

    def delete_connector(self, connector_id: int) -> bool:
        """Bitrix24 refuses (CONNECTOR_DELETE_RESTRICTED) while any source uses the connector."""
        return self.client.call("biconnector.connector.delete", {"id": connector_id}) is True

    # Sources
    def sources(self, **params) -> list[Source]:
        return [normalize_source(item) for item in self.client.list_all("biconnector.source.list", params)]

    def connectors_and_sources(self, along: Along | None = None) -> tuple[list[Connector], list[Source]]:
        """Both complete lists in as few requests as paging allows: the first pages together.
        `along` (see BitrixClient.list_many) sees the lists "connectors" and "sources" normalized."""
        lists = self.client.list_many({"connectors": ("biconnector.connector.list", {}),
                                       "sources": ("biconnector.source.list", {})},
                                      along=_Normalizing(along) if along is not None else None)
        return ([normalize_connector(item) for item in lists["connectors"]],
                [normalize_source(item) for item in lists["sources"]])

    def source(self, source_id: int) -> Source:
        return normalize_source(self.client.call("biconnector.source.get", {"id": source_id})["item"])

    def source_fields(self) -> list[dict]:
        return self.client.call("biconnector.source.fields")["fields"]

    def add_source(self, fields: dict) -> int:
        """Bitrix24 calls the connector's urlCheck with `settings` before it creates anything."""
        return int(self.client.call("biconnector.source.add", {"fields": fields})["id"])

    def delete_source(self, source_id: int) -> bool:
        return self.client.call("biconnector.source.delete", {"id": source_id}) is True

    def update_source(self, source_id: int, fields: dict) -> bool:
        """Bitrix24 requires `title` on every update and checks the connector's urlCheck first."""
        return self.client.call("biconnector.source.update", {"id": source_id, "fields": fields}) is True
