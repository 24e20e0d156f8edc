"""Sentences a person understands, in English and Russian.

`explain(error, lang)` turns a `BitrixError` (or `PortalUnavailable`) into advice; the code stays
visible separately for support. `field_message` localizes a validation `FieldError`, and
`text(key, lang)` holds the app's own messages (API errors and the tab's interface texts).
"""
from __future__ import annotations

from .validation import FieldError

LANGUAGES = ("en", "ru")


def normalize_lang(lang: str | None) -> str:
    """Bitrix24's LANG (`en`, `ru`, `de`, …) → a language we have texts for."""
    lang = (lang or "").strip().lower()[:2]
    return lang if lang in LANGUAGES else "en"


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[LANGUAGES.index(normalize_lang(lang))]


# --- Bitrix24 errors ---------------------------------------------------------------------------

NEEDS_REAUTH = (
    "The app's stored authorization for this portal stopped working. A portal administrator has to "
    "open the app and click “Renew authorization”.",
    "Сохранённая авторизация приложения на этом портале перестала действовать. Администратор портала "
    "должен открыть приложение и нажать «Обновить авторизацию».",
)
NOT_INSTALLED = (
    "The app is no longer installed on this portal. Install it again from the Bitrix24 Market.",
    "Приложение больше не установлено на этом портале. Установите его заново из Маркета Битрикс24.",
)
UNREACHABLE = (
    "Bitrix24 could not be reached. Check the connection and try again in a minute.",
    "Не удалось связаться с Битрикс24. Проверьте соединение и повторите попытку через минуту.",
)
BROKEN_ANSWER = (
    "Bitrix24 answered with an error instead of data. Try again in a few minutes.",
    "Битрикс24 вернул ошибку вместо данных. Повторите попытку через несколько минут.",
)
TOKEN_REFUSED = (
    "Bitrix24 did not accept the app's authorization. Reload the page; if this repeats, a portal "
    "administrator should renew the authorization.",
    "Битрикс24 не принял авторизацию приложения. Обновите страницу; если ошибка повторится, "
    "администратор портала должен обновить авторизацию.",
)

EXPLANATIONS: dict[str, tuple[str, str]] = {
    "CONNECTOR_NOT_FOUND": (
        "Bitrix24 has no such connector for this app. It may have been deleted, or it belongs to another application.",
        "В Битрикс24 нет такого коннектора этого приложения. Возможно, он удалён или принадлежит другому приложению.",
    ),
    "SOURCE_NOT_FOUND": (
        "Bitrix24 has no such source (connection) for this app. It may have been deleted in the Analytics hub.",
        "В Битрикс24 нет такого источника (подключения) этого приложения. Возможно, его удалили в Аналитическом центре.",
    ),
    # Bitrix24 does not say why its urlCheck call failed (reference 6.4), so all three causes are named.
    "SOURCE_UPDATE_CONNECTION_ERROR": (
        "Bitrix24 did not save the source: the connector's check URL refused the connection. Either it did "
        "not answer (is the connector's server running and reachable from the internet?), or it answered with "
        "an error status (the credentials or settings were rejected: check them), or with an empty body. "
        "Use “Test connection” to see which.",
        "Битрикс24 не сохранил источник: адрес проверки коннектора не принял подключение. Либо он не ответил "
        "(работает ли сервер коннектора и доступен ли он из интернета?), либо ответил кодом ошибки (учётные "
        "данные или параметры отклонены: проверьте их), либо вернул пустой ответ. «Проверить подключение» "
        "покажет, что именно.",
    ),
    "SOURCE_CREATE_CONNECTION_ERROR": (
        "Bitrix24 did not create the source: the connector's check URL refused the connection. Either it did "
        "not answer (is the connector's server running and reachable from the internet?), or it answered with "
        "an error status (the credentials or settings were rejected: check them), or with an empty body.",
        "Битрикс24 не создал источник: адрес проверки коннектора не принял подключение. Либо он не ответил "
        "(работает ли сервер коннектора и доступен ли он из интернета?), либо ответил кодом ошибки (учётные "
        "данные или параметры отклонены: проверьте их), либо вернул пустой ответ.",
    ),
    "QUERY_LIMIT_EXCEEDED": (
        "Bitrix24 is receiving too many requests from the app right now. Wait a few seconds and try again.",
        "Битрикс24 сейчас получает слишком много запросов от приложения. Подождите несколько секунд и повторите.",
    ),
    "OVERLOAD_LIMIT": (
        "The portal's REST API is temporarily blocked because of overload. Try again later.",
        "REST API портала временно заблокирован из-за перегрузки. Повторите попытку позже.",
    ),
    "OPERATION_TIME_LIMIT": (
        "Bitrix24 has paused this operation for the app because it used up its processing time. "
        "Try again in a few minutes.",
        "Битрикс24 временно приостановил эту операцию для приложения: исчерпан лимит времени выполнения. "
        "Повторите через несколько минут.",
    ),
    "PORTAL_BUSY": (
        "The app is already sending this portal as many requests as Bitrix24 allows, so this one was not "
        "sent. Try again in a few seconds.",
        "Приложение уже отправляет порталу столько запросов, сколько разрешает Битрикс24, поэтому этот запрос "
        "не отправлен. Повторите через несколько секунд.",
    ),
    "TOO_MANY_REQUESTS": (
        "The app is being opened on this portal too often right now. Wait a few seconds and open it again.",
        "Приложение сейчас слишком часто открывают на этом портале. Подождите несколько секунд и откройте его снова.",
    ),
    "ACCESS_DENIED": (
        "Bitrix24 denied access. The account the app works with needs the “Access to BI Builder” and "
        "“Access to Analytics Hub” rights.",
        "Битрикс24 отказал в доступе. Учётной записи, от имени которой работает приложение, нужны права "
        "«Доступ к BI-конструктору» и «Доступ к Аналитическому центру».",
    ),
    "insufficient_scope": (
        "The app lacks the BI Builder (biconnector) permission on this portal. Reinstall the app.",
        "У приложения нет разрешения BI-конструктора (biconnector) на этом портале. Переустановите приложение.",
    ),
    "PORTAL_NEEDS_REAUTH": NEEDS_REAUTH,
    "invalid_grant": NEEDS_REAUTH,
    "invalid_client": NEEDS_REAUTH,
    "PORTAL_UNINSTALLED": NOT_INSTALLED,
    "APPLICATION_NOT_FOUND": NOT_INSTALLED,
    "PORTAL_NOT_FOUND": (
        "This portal has not installed the app.",
        "Это приложение не установлено на портале.",
    ),
    "PORTAL_MOVED": (
        "The portal answers from another address, which the Bitrix24 authorization server did not confirm, "
        "so the app sent nothing there. Try again later; if this repeats, open the app from the portal once.",
        "Портал отвечает с другого адреса, который сервер авторизации Битрикс24 не подтвердил, поэтому "
        "приложение ничего туда не отправило. Повторите позже; если ошибка повторится, откройте приложение "
        "на портале.",
    ),
    "PAYMENT_REQUIRED": (
        "The app's subscription on this portal has to be paid before it can work again.",
        "Чтобы приложение снова заработало, нужно оплатить подписку на этом портале.",
    ),
    "expired_token": TOKEN_REFUSED,
    "invalid_token": TOKEN_REFUSED,
    "NO_AUTH_FOUND": TOKEN_REFUSED,
    "NETWORK_ERROR": UNREACHABLE,
    "NETWORK_TIMEOUT": (
        "Bitrix24 did not answer in time. The change may or may not have been saved; reload to check.",
        "Битрикс24 не ответил вовремя. Изменение могло сохраниться или нет; обновите страницу, чтобы проверить.",
    ),
    "INVALID_RESPONSE": BROKEN_ANSWER,
    "INTERNAL_SERVER_ERROR": BROKEN_ANSWER,
    "ERROR_UNEXPECTED_ANSWER": BROKEN_ANSWER,
}
TITLE_REQUIRED = (
    "Bitrix24 requires the source's title on every change. Fill in the title and save again.",
    "Битрикс24 требует название источника при каждом изменении. Заполните название и сохраните ещё раз.",
)
REJECTED_DATA = (
    "Bitrix24 rejected the data: {description}",
    "Битрикс24 отклонил данные: {description}",
)
FALLBACK = (
    "Bitrix24 refused the request ({code}). {description}",
    "Битрикс24 отклонил запрос ({code}). {description}",
)
PLAN_ACCESS_DENIED = (
    "This portal's plan does not include the REST API, which the app needs.",
    "Тариф портала не включает REST API, необходимый приложению.",
)
AMBIGUOUS_PORTAL = (
    "Several portals have the domain {domain} (a portal was renamed and another took its old name): "
    "member ids {member_ids}. Name the portal by its member id.",
    "Домен {domain} есть у нескольких порталов (один портал переименовали, и его прежнее имя занял другой): "
    "member id {member_ids}. Укажите портал по его member id.",
)


def explain(error, lang: str = "en") -> str:
    """A sentence for a `BitrixError`/`PortalUnavailable` (anything with `.code`, `.description`)."""
    code = str(getattr(error, "code", "") or "BITRIX_ERROR")
    description = str(getattr(error, "description", "") or "").strip()
    if code in ("BITRIX_ERROR", "0") and "fields are required" in description.lower():
        return _pick(TITLE_REQUIRED, lang)  # source.update's code-less "All the fields are required."
    if code == "ACCESS_DENIED" and "commercial" in description.lower():
        return _pick(PLAN_ACCESS_DENIED, lang)
    if code == "PORTAL_AMBIGUOUS":  # tokens.AmbiguousPortal
        return _pick(AMBIGUOUS_PORTAL, lang).format(domain=getattr(error, "domain", ""),
                                                    member_ids=", ".join(getattr(error, "member_ids", ())))
    if code in EXPLANATIONS:
        return _pick(EXPLANATIONS[code], lang)
    if code.startswith("HTTP_5"):
        return _pick(BROKEN_ANSWER, lang)
    if code.startswith(("VALIDATION_", "BX_")) and description:
        return _pick(REJECTED_DATA, lang).format(description=description)
    return _pick(FALLBACK, lang).format(code=code, description=description).strip()


# --- validation errors next to a field ---------------------------------------------------------

FIELD_MESSAGES_RU = {
    "VALIDATION_FIELDS_NOT_PROVIDED": "Нет данных для сохранения.",
    "VALIDATION_UNKNOWN_PARAMETERS": "Битрикс24 не знает такого поля.",
    "VALIDATION_READ_ONLY_FIELD": "Это поле только для чтения.",
    "VALIDATION_IMMUTABLE_FIELD": "Это поле нельзя изменить.",
    "VALIDATION_INVALID_FIELD_TYPE": "Недопустимый тип значения.",
    "VALIDATION_REQUIRED_FIELD_MISSING": "Обязательное поле.",
    "BX_EMPTY_REQUIRED": "Поле не может быть пустым.",
    "BX_INVALID_VALUE": "Слишком длинное значение.",
    "INVALID_URL": "Нужен адрес, начинающийся с http:// или https://.",
    "VALIDATION_SETTINGS_MISSING_REQUIRED_FIELDS": "У параметра должны быть название, код и тип.",
    "VALIDATION_SETTINGS_NAME_TOO_LONG": "Название должно быть короче 512 символов.",
    "VALIDATION_SETTINGS_CODE_TOO_LONG": "Код должен быть короче 512 символов.",
    "VALIDATION_SETTINGS_INVALID_TYPE": "Тип должен быть STRING или INT.",
    "DUPLICATE_SETTING_CODE": "Такой код уже есть в таблице.",
    "UNKNOWN_SETTING_CODE": "Коннектор не объявляет такой параметр.",
    "INVALID_SETTING_VALUE": "Нужно целое число.",
    "INVALID_PORT": "Недопустимый номер порта.",
    "ENDPOINTS_ADMIN_ONLY": "Адреса коннектора может менять только администратор портала.",
    "ADDRESS_NOT_ALLOWED": "Адрес должен указывать на публичный хост: Битрикс24 отправляет на адреса коннектора "
                           "сохранённые параметры источников.",
    "HOST_NOT_RESOLVED": "Не удалось определить IP-адрес этого хоста, поэтому его нельзя проверить.",
    "INVALID_HOST": "Недопустимое имя хоста.",
}


def field_message(error: FieldError, lang: str = "en") -> str:
    if normalize_lang(lang) == "ru" and error.code in FIELD_MESSAGES_RU:
        return FIELD_MESSAGES_RU[error.code]
    return error.message


# --- the app's own texts -----------------------------------------------------------------------

TEXTS: dict[str, tuple[str, str]] = {
    # Opening the tab (POST /app)
    "MISSING_FIELDS": (
        "This page has to be opened from Bitrix24: the request lacks the portal's authorization.",
        "Эту страницу нужно открывать из Битрикс24: в запросе нет авторизации портала.",
    ),
    "UNKNOWN_PORTAL": (
        "This portal has not installed the application. Install it from the Bitrix24 Market first.",
        "Приложение не установлено на этом портале. Сначала установите его из Маркета Битрикс24.",
    ),
    "APP_NOT_INSTALLED": (
        "The application was uninstalled from this portal. Install it again to use it.",
        "Приложение удалено с этого портала. Установите его заново, чтобы пользоваться им.",
    ),
    "INVALID_APPLICATION_TOKEN": (
        "This request does not come from the portal the application is installed on.",
        "Этот запрос пришёл не с портала, на котором установлено приложение.",
    ),
    "APP_NOT_AUTHORIZED": (
        "This page has to be opened from Bitrix24, on a portal where the application is installed.",
        "Эту страницу нужно открывать из Битрикс24, на портале, где установлено приложение.",
    ),
    "INVALID_AUTH": (
        "Bitrix24 did not confirm your authorization. Close the application and open it again.",
        "Битрикс24 не подтвердил вашу авторизацию. Закройте приложение и откройте его снова.",
    ),
    "PORTAL_UNREACHABLE": (
        "The portal did not answer. Please try again in a minute.",
        "Портал не ответил. Повторите попытку через минуту.",
    ),
    # API errors
    "SESSION_REQUIRED": ("Open the app from Bitrix24 to use it.", "Откройте приложение из Битрикс24."),
    "SESSION_EXPIRED": (
        "Your session in the app has expired. Reload the page to continue.",
        "Сеанс работы с приложением истёк. Обновите страницу, чтобы продолжить.",
    ),
    "SESSION_INVALID": (
        "The app could not recognize your session. Reload the page.",
        "Приложение не распознало ваш сеанс. Обновите страницу.",
    ),
    "SESSION_REVOKED": (
        "The app was reinstalled since this page was opened. Reload the page.",
        "С момента открытия страницы приложение было переустановлено. Обновите страницу.",
    ),
    "BITRIX_AUTH_REQUIRED": (
        "This needs your current Bitrix24 authorization, which the page could not get. "
        "Close the application and open it again.",
        "Для этого нужна ваша текущая авторизация Битрикс24, а страница не смогла её получить. "
        "Закройте приложение и откройте его снова.",
    ),
    "READ_ONLY": (
        "You can view connectors and sources, but only portal administrators and the users they allow can change them.",
        "Вы можете просматривать коннекторы и источники, но изменять их могут только администраторы портала "
        "и пользователи, которым они это разрешили.",
    ),
    "ADMIN_ONLY": ("Only a portal administrator can do this.", "Это может сделать только администратор портала."),
    "ENDPOINTS_ADMIN_ONLY": (
        "Only a portal administrator can change a connector's URLs: Bitrix24 sends the stored source settings to them.",
        "Адреса коннектора может менять только администратор портала: Битрикс24 отправляет на них сохранённые "
        "параметры источников.",
    ),
    "INVALID_JSON": ("The request is not a valid JSON object.", "Запрос не является корректным объектом JSON."),
    "INVALID_FIELDS": ("Some fields need fixing before saving.", "Перед сохранением исправьте отмеченные поля."),
    "VALIDATION_INVALID_ID_FORMAT": ("The id has to be a positive integer.", "Идентификатор должен быть целым положительным числом."),
    "INVALID_EDITORS": (
        "Editors must be a list of Bitrix24 user ids (positive integers).",
        "Редакторы задаются списком идентификаторов пользователей Битрикс24 (целые положительные числа).",
    ),
    "REAUTH_NOT_NEEDED": (
        "The stored authorization works; nothing to renew.",
        "Сохранённая авторизация работает, обновлять нечего.",
    ),
    "REAUTH_UNAVAILABLE": (
        "Reopen the app from Bitrix24 to renew the authorization.",
        "Откройте приложение из Битрикс24 заново, чтобы обновить авторизацию.",
    ),
    # Change history and concurrent edits (services/history.py)
    "EDIT_CONFLICT": (
        "Someone else changed this since you opened it. Compare their values with yours and save again.",
        "Пока вы редактировали, это изменил кто-то другой. Сравните его значения со своими и сохраните снова.",
    ),
    "NOT_REVERTIBLE": (
        "This change cannot be undone here: it changed only secret values or created or deleted the object.",
        "Это изменение нельзя отменить здесь: в нём менялись только секретные значения или объект создавался "
        "или удалялся.",
    ),
    "CHANGE_NOT_FOUND": (
        "There is no such change in this portal's history.",
        "В истории этого портала нет такого изменения.",
    ),
    "INVALID_VERSION": (
        "ifVersion has to be the version text the object was loaded with.",
        "ifVersion должен быть текстом версии, с которой объект был загружен.",
    ),
    "UNKNOWN_USERS": (
        "These user ids do not exist on the portal: {ids}. Pick users by name instead.",
        "На портале нет пользователей с такими идентификаторами: {ids}. Выберите пользователей по имени.",
    ),
    # Creating, deleting and testing connectors and sources (services/tab.py)
    "GATEWAY_CONNECTOR": (
        "This connector belongs to the app's secure gateway and comes back on its own. To remove its data "
        "from BI Builder, remove the database in the app's Databases part instead.",
        "Этот коннектор принадлежит защищённому шлюзу приложения и восстанавливается сам. Чтобы убрать его "
        "данные из BI-конструктора, удалите базу данных в разделе приложения «Базы данных».",
    ),
    "GATEWAY_CONNECTOR_SOURCE": (
        "Sources of the app's secure gateway are made by adding a database in the app's Databases part.",
        "Источники защищённого шлюза приложения создаются добавлением базы данных в разделе «Базы данных».",
    ),
    "GATEWAY_SOURCE": (
        "This source belongs to a database of the app's secure gateway. Remove the database in the app's "
        "Databases part instead; that deletes the source too.",
        "Этот источник принадлежит базе данных защищённого шлюза приложения. Удалите базу данных в разделе "
        "«Базы данных»: источник удалится вместе с ней.",
    ),
    "CONNECTOR_DELETE_RESTRICTED": (
        "Bitrix24 keeps a connector while sources use it. Delete the connector's sources first, then the connector.",
        "Битрикс24 не удаляет коннектор, пока им пользуются источники. Сначала удалите источники коннектора, "
        "затем сам коннектор.",
    ),
    "SOURCE_IN_USE": (
        "Bitrix24 keeps a source while BI Builder datasets use it. Delete those datasets in BI Builder first, "
        "then the source.",
        "Битрикс24 не удаляет источник, пока им пользуются наборы данных BI-конструктора. Сначала удалите эти "
        "наборы данных в BI-конструкторе, затем источник.",
    ),
    # Test connection: what Bitrix24 saw from the connector's urlCheck
    "CHECK_OK": (
        "The connector's check URL accepted the connection: Bitrix24 can use this source.",
        "Адрес проверки коннектора принял подключение: Битрикс24 может пользоваться этим источником.",
    ),
    "CHECK_NO_ANSWER": (
        "The connector's check URL did not answer in time. Make sure the connector's server is running and "
        "reachable from the internet.",
        "Адрес проверки коннектора не ответил вовремя. Убедитесь, что сервер коннектора работает и доступен "
        "из интернета.",
    ),
    "CHECK_ERROR_STATUS": (
        "The connector's check URL answered with an error status{status}: it rejected the credentials or "
        "settings. Check the source's settings.",
        "Адрес проверки коннектора ответил кодом ошибки{status}: он отклонил учётные данные или параметры. "
        "Проверьте параметры источника.",
    ),
    "CHECK_EMPTY_BODY": (
        "The connector's check URL answered with an empty body, which Bitrix24 counts as a failure. The "
        "connector has to answer 200 with some text.",
        "Адрес проверки коннектора вернул пустой ответ, а Битрикс24 считает это ошибкой. Коннектор должен "
        "отвечать 200 с непустым текстом.",
    ),
    "CHECK_REFUSED": (
        "Bitrix24 refused the connection to the connector's check URL without saying why: it did not answer, "
        "answered with an error status (credentials or settings rejected) or answered with an empty body. "
        "Check that the connector's server is reachable from the internet and that the source's settings are "
        "right.",
        "Битрикс24 отказался от подключения к адресу проверки коннектора, не сообщив причину: он не ответил, "
        "ответил кодом ошибки (учётные данные или параметры отклонены) или вернул пустой ответ. Проверьте, что "
        "сервер коннектора доступен из интернета и параметры источника верны.",
    ),
    "INVALID_SEARCH": (
        "Type up to 100 characters of a user's name to search for.",
        "Введите до 100 символов имени пользователя для поиска.",
    ),
}

UI: dict[str, tuple[str, str]] = {
    "title": ("BI Builder connectors", "Коннекторы BI-конструктора"),
    "loading": ("Loading…", "Загрузка…"),
    "saving": ("Saving…", "Сохранение…"),
    "saved": ("Saved.", "Сохранено."),
    "nothing_changed": ("Nothing changed.", "Изменений нет."),
    "save": ("Save", "Сохранить"),
    "cancel": ("Cancel", "Отмена"),
    "edit": ("Edit", "Изменить"),
    "view": ("View", "Просмотр"),
    "back": ("Back to the list", "Назад к списку"),
    "connectors": ("Connectors", "Коннекторы"),
    "sources": ("Sources", "Источники"),
    "no_sources": ("No sources use this connector.", "Этот коннектор не используется ни одним источником."),
    "orphan_sources": ("Sources of other connectors", "Источники других коннекторов"),
    "connector": ("Connector", "Коннектор"),
    "source": ("Source", "Источник"),
    "field_title": ("Title", "Название"),
    "field_description": ("Description", "Описание"),
    "field_sort": ("Sort", "Сортировка"),
    "field_logo": ("Logo", "Логотип"),
    "logo_hint": ("An image URL, or upload an image (sent as a data: URI).",
                  "Адрес картинки или загруженное изображение (отправляется как data: URI)."),
    "logo_upload": ("Upload image", "Загрузить изображение"),
    "logo_too_big": ("The image is larger than 512 KB.", "Изображение больше 512 КБ."),
    "logo_not_shown": ("Logos at other addresses are not shown here; upload the image to see it.",
                       "Логотипы по внешним адресам здесь не показываются; загрузите изображение, чтобы его увидеть."),
    "field_urlCheck": ("Check URL", "Адрес проверки"),
    "field_urlTableList": ("Table list URL", "Адрес списка таблиц"),
    "field_urlTableDescription": ("Table description URL", "Адрес описания таблицы"),
    "field_urlData": ("Data URL", "Адрес данных"),
    "field_supportMapping": ("Supports field mapping", "Поддерживает сопоставление полей"),
    "field_sourceCode": ("Source code", "Код источника"),
    "field_settings": ("Settings", "Параметры"),
    "settings_hint": ("Parameters every source of this connector fills in. The whole table is saved at once.",
                      "Параметры, которые заполняет каждый источник коннектора. Таблица сохраняется целиком."),
    "setting_name": ("Name", "Название"),
    "setting_code": ("Code", "Код"),
    "setting_type": ("Type", "Тип"),
    "add_setting": ("Add parameter", "Добавить параметр"),
    "remove": ("Remove", "Удалить"),
    "field_connector": ("Connector", "Коннектор"),
    "field_active": ("Active", "Активен"),
    "source_gateway_note": ("This source belongs to a database: change it in the Databases part.",
                            "Этот источник принадлежит базе данных: меняйте его в разделе «Базы данных»."),
    "active_note": ("Bitrix24 turns sources on and off only in its own Analytics hub.",
                    "Битрикс24 включает и выключает источники только в своём Аналитическом центре."),
    "required": ("Required.", "Обязательное поле."),
    "too_long": ("Too long.", "Слишком длинное значение."),
    "bad_url": ("Must be an http:// or https:// URL.", "Нужен адрес, начинающийся с http:// или https://."),
    "bad_logo": ("Must be an http(s) URL or an uploaded image.", "Нужен адрес http(s) или загруженное изображение."),
    "not_integer": ("Must be an integer.", "Нужно целое число."),
    "duplicate_code": ("This code is used twice.", "Такой код уже есть в таблице."),
    "read_only_banner": ("You can view the connectors, but not change them. Ask a portal administrator for edit access.",
                         "Вы можете просматривать коннекторы, но не изменять их. Попросите доступ у администратора портала."),
    "reauth_button": ("Renew authorization", "Обновить авторизацию"),
    "reauth_done": ("Authorization renewed.", "Авторизация обновлена."),
    "payment_banner": ("The app's subscription has to be paid before it can load data.",
                       "Чтобы приложение загружало данные, нужно оплатить подписку."),
    "editors": ("Who can edit", "Кто может изменять"),
    "editors_hint": ("Portal administrators can always edit. Find other users by name to allow them.",
                     "Администраторы портала могут изменять всегда. Найдите других пользователей по имени, чтобы разрешить им."),
    "editors_none": ("Only administrators.", "Только администраторы."),
    "editor_add": ("Allow", "Разрешить"),
    "editor_pick": ("Choose users…", "Выбрать пользователей…"),
    "user": ("User", "Пользователь"),
    "network_error": ("The app's server could not be reached. Check the connection and try again.",
                      "Не удалось связаться с сервером приложения. Проверьте соединение и повторите."),
    "source_count": ("Sources: {n}", "Источников: {n}"),
    "connector_id": ("Connector #{id}", "Коннектор #{id}"),
    "error_code": ("Code", "Код"),
    "you": ("You", "Вы"),
    "role_admin": ("administrator", "администратор"),
    "role_editor": ("editor", "редактор"),
    "role_reader": ("read-only", "только просмотр"),
    # Databases served through the connector gateway
    "databases": ("Databases", "Базы данных"),
    "databases_hint": ("Bring your own PostgreSQL or MySQL database into BI Builder: credentials stay in this app; "
                       "Bitrix24 only gets a key.",
                       "Подключите свою базу PostgreSQL или MySQL к BI-конструктору: учётные данные остаются "
                       "в приложении, Битрикс24 получает только ключ."),
    "databases_empty": ("No databases yet. Add one: the app checks the connection, creates its source in Bitrix24 "
                        "and serves BI Builder the tables you choose.",
                        "Баз данных пока нет. Добавьте первую: приложение проверит подключение, создаст для неё "
                        "источник в Битрикс24 и будет отдавать BI-конструктору выбранные таблицы."),
    "databases_empty_reader": ("No databases yet.", "Баз данных пока нет."),
    "database": ("Database", "База данных"),
    "database_new": ("New database", "Новая база данных"),
    "database_add": ("Add a database", "Добавить базу данных"),
    "database_edit_aria": ("Edit database {title}", "Изменить базу данных {title}"),
    "database_view_aria": ("View database {title}", "Просмотр: база данных {title}"),
    "database_test": ("Test connection", "Проверить подключение"),
    "database_test_aria": ("Test connection to database {title}", "Проверить подключение к базе данных {title}"),
    "database_testing": ("Testing the connection…", "Проверка подключения…"),
    "database_check_ok": ("Connection OK · {n} tables", "Подключение работает · таблиц: {n}"),
    "database_check_ok_one": ("Connection OK · 1 table", "Подключение работает · 1 таблица"),
    "database_delete": ("Delete", "Удалить"),
    "database_delete_aria": ("Delete database {title}", "Удалить базу данных {title}"),
    "database_delete_note": ("Its source in Bitrix24 is deleted too.", "Её источник в Битрикс24 тоже будет удалён."),
    "database_delete_confirm": ("Delete for good", "Удалить окончательно"),
    "database_delete_confirm_aria": ("Delete for good: database {title} and its Bitrix24 source",
                                     "Удалить окончательно: база данных {title} и её источник в Битрикс24"),
    "database_keep": ("Keep", "Оставить"),
    "database_keep_aria": ("Keep database {title}", "Оставить базу данных {title}"),
    "database_deleting": ("Deleting…", "Удаление…"),
    "database_deleted": ("Database “{title}” deleted.", "База данных «{title}» удалена."),
    "database_added": ("Database added: its source #{id} is ready in BI Builder.",
                       "База данных добавлена: её источник #{id} готов в BI-конструкторе."),
    "database_saving": ("Testing the connection and saving…", "Проверка подключения и сохранение…"),
    "source_id": ("Source #{id}", "Источник #{id}"),
    "field_kind": ("Database type", "Тип базы данных"),
    "field_host": ("Host", "Хост"),
    "field_port": ("Port", "Порт"),
    "field_database": ("Database name", "Имя базы данных"),
    "field_file": ("File name", "Имя файла"),
    "file_hint": ("A file in the app server's SQLite folder (GATEWAY_SQLITE_DIR).",
                  "Файл в папке SQLite на сервере приложения (GATEWAY_SQLITE_DIR)."),
    "field_user": ("User name", "Имя пользователя"),
    "field_password": ("Password", "Пароль"),
    "password_unchanged": ("Unchanged", "Без изменений"),
    "password_hint": ("Stored encrypted and never shown.", "Хранится в зашифрованном виде и не показывается."),
    "field_tlsMode": ("TLS mode", "Режим TLS"),
    "tls_prefer": ("Prefer TLS", "TLS, если сервер поддерживает"),
    "tls_require": ("Require TLS", "Только TLS"),
    "tls_verify_full": ("Require TLS, verify the certificate and host name",
                        "Только TLS, с проверкой сертификата и имени хоста"),
    "tls_verify_ca": ("Require TLS, verify the certificate", "Только TLS, с проверкой сертификата"),
    "tls_disable": ("No TLS", "Без TLS"),
    "field_schema": ("Schema", "Схема"),
    "schema_hint": ("Optional: the schema whose tables BI Builder sees.",
                    "Необязательно: схема, таблицы которой видит BI-конструктор."),
    "field_tables": ("Tables", "Таблицы"),
    "tables_hint": ("Optional, one name per line. Leave empty to expose every table and view.",
                    "Необязательно, по одному имени в строке. Оставьте пустым, чтобы открыть все таблицы и представления."),
    "field_savedQueries": ("Saved queries", "Сохранённые запросы"),
    "saved_queries_hint": ("Each SELECT query appears in BI Builder as a table of its own.",
                           "Каждый запрос SELECT появится в BI-конструкторе как отдельная таблица."),
    "query_title": ("Query title", "Название запроса"),
    "query_sql": ("SQL query", "SQL-запрос"),
    "query_add": ("Add a saved query", "Добавить запрос"),
    "query_remove": ("Remove saved query {n}", "Удалить запрос {n}"),
    "field_rotateSecret": ("Rotate the source's secret in Bitrix24", "Заменить секрет источника в Битрикс24"),
    "rotate_hint": ("Bitrix24 gets a new secret; the old one stops working once Bitrix24 has saved it.",
                    "Битрикс24 получит новый секрет; старый перестанет действовать, как только Битрикс24 его сохранит."),
    "bad_port": ("A whole number from 1 to 65535.", "Целое число от 1 до 65535."),
    "check_field": ("Check this field.", "Проверьте это поле."),
    # The editor as Bitrix24 users know it (issue 9)
    "badge_active": ("Active", "Активен"),
    "badge_inactive": ("Inactive", "Неактивен"),
    "sort_hint": ("Lower numbers come first in BI Builder's list of connectors (Bitrix24's default is 100).",
                  "Чем меньше число, тем выше коннектор в списке BI-конструктора (по умолчанию в Битрикс24 — 100)."),
    "sourceCode_hint": ("An optional code up to 64 characters that Bitrix24 keeps with the connector; it does not change "
                        "the data. Leave it as it is unless your integration asks for one.",
                        "Необязательный код до 64 символов, который Битрикс24 хранит вместе с коннектором; на данные он "
                        "не влияет. Не меняйте его, если интеграция этого не требует."),
    "supportMapping_hint": ("Tick it when the connector's data endpoint follows columns that BI Builder users renamed "
                            "(Bitrix24 then sends the mapping with every data request).",
                            "Отметьте, если адрес данных коннектора учитывает столбцы, переименованные пользователями "
                            "BI-конструктора (Битрикс24 передаёт сопоставление в каждом запросе данных)."),
    "required_legend": ("Fields marked * are required.", "Поля, отмеченные *, обязательны."),
    "logo_uploaded": ("Uploaded image, {size}", "Загруженное изображение, {size}"),
    "logo_use_url": ("Use an image URL instead", "Указать адрес картинки"),
    "logo_preview_alt": ("Logo of {title}", "Логотип: {title}"),
    "empty_value": ("Not set", "Не задано"),
    "yes": ("Yes", "Да"),
    "no": ("No", "Нет"),
    "secret_set": ("Set (secret, not shown)", "Задано (секрет, не показывается)"),
    "secret_not_set": ("Not set (secret)", "Не задано (секрет)"),
    "secret_value_set": ("Secret. A value is set; type a new one to replace it.",
                         "Секрет. Значение задано; введите новое, чтобы заменить."),
    "secret_value_not_set": ("Secret. Not set.", "Секрет. Не задано."),
    "shown_note": ("Secret values are never shown; only what you type is sent. Other values are shown as stored.",
                   "Секретные значения не показываются; отправляется только введённое. Остальные показаны как есть."),
    "connector_edit_aria": ("Edit connector {title}", "Изменить коннектор {title}"),
    "connector_view_aria": ("View connector {title}", "Просмотр: коннектор {title}"),
    "source_edit_aria": ("Edit source {title}", "Изменить источник {title}"),
    "source_view_aria": ("View source {title}", "Просмотр: источник {title}"),
    "setting_row_label": ("Parameter {n}", "Параметр {n}"),
    "setting_move_up_aria": ("Move parameter {n} up", "Переместить параметр {n} выше"),
    "setting_move_down_aria": ("Move parameter {n} down", "Переместить параметр {n} ниже"),
    "setting_remove_aria": ("Remove parameter {n}", "Удалить параметр {n}"),
    "save_connector": ("Save connector", "Сохранить коннектор"),
    "save_source": ("Save source", "Сохранить источник"),
    "save_database": ("Save database", "Сохранить базу данных"),
    "unsaved_title": ("Discard your changes?", "Отменить изменения?"),
    "unsaved_text": ("You changed this form and did not save it. Your changes will be lost.",
                     "Вы изменили форму и не сохранили её. Изменения будут потеряны."),
    "discard": ("Discard changes", "Отменить изменения"),
    "keep_editing": ("Keep editing", "Продолжить редактирование"),
    "search": ("Search", "Поиск"),
    "search_placeholder": ("Title of a connector or source", "Название коннектора или источника"),
    "filter_connector": ("Connector", "Коннектор"),
    "filter_all_connectors": ("All connectors", "Все коннекторы"),
    "filter_active": ("Sources", "Источники"),
    "filter_all_sources": ("All sources", "Все источники"),
    "filter_active_only": ("Active only", "Только активные"),
    "filter_inactive_only": ("Inactive only", "Только неактивные"),
    "filter_nothing": ("Nothing matches the search or filters.", "Ничего не найдено по поиску и фильтрам."),
    "filter_count": ("Shown: {n} of {total} sources", "Показано источников: {n} из {total}"),
    "sources_show_all": ("Show all {n} sources of {title}", "Показать все источники ({n}): {title}"),
    "sources_show_all_short": ("Show all {n}", "Показать все ({n})"),
    "sources_show_fewer": ("Show fewer", "Свернуть"),
    "reauth_banner_admin_one": ("The app lost its access to this portal, so nothing can be loaded. "
                                "Renew it with your own authorization.",
                                "Приложение потеряло доступ к порталу, поэтому ничего не загружается. "
                                "Восстановите его своей авторизацией."),
    "reauth_banner_user_one": ("The app lost its access to this portal, so nothing can be shown. "
                               "A portal administrator can restore it by opening the app.",
                               "Приложение потеряло доступ к порталу, поэтому ничего не показывается. "
                               "Администратор портала восстановит его, открыв приложение."),
    "empty_title": ("Bring your company's data into BI Builder", "Данные компании — в BI-конструктор"),
    "empty_text": ("BI Builder gets external data through connectors. This app serves connectors for your own "
                   "PostgreSQL and MySQL databases (credentials stay in the app) and lets you manage connectors "
                   "hosted elsewhere. There is nothing here yet.",
                   "BI-конструктор получает внешние данные через коннекторы. Приложение обслуживает коннекторы к вашим "
                   "базам PostgreSQL и MySQL (учётные данные остаются в приложении) и помогает управлять коннекторами, "
                   "размещёнными в другом месте. Пока здесь ничего нет."),
    "empty_reader": ("There is nothing here yet. A portal administrator can add a database or a custom connector.",
                     "Пока здесь ничего нет. Администратор портала может добавить базу данных или свой коннектор."),
    "connector_add": ("Add a custom connector", "Добавить свой коннектор"),
    "connector_new": ("New custom connector", "Новый коннектор"),
    "connector_added": ("Connector added.", "Коннектор добавлен."),
    "connector_delete": ("Delete", "Удалить"),
    "connector_delete_aria": ("Delete connector {title}", "Удалить коннектор {title}"),
    "connector_delete_title": ("Delete connector “{title}”?", "Удалить коннектор «{title}»?"),
    "connector_delete_text": ("BI Builder loses the connector for good. Bitrix24 refuses while sources still use it.",
                              "Коннектор будет удалён из BI-конструктора окончательно. Битрикс24 откажет, пока его "
                              "используют источники."),
    "connector_deleted": ("Connector “{title}” deleted.", "Коннектор «{title}» удалён."),
    "source_add": ("Add a source", "Добавить источник"),
    "source_add_aria": ("Add a source to connector {title}", "Добавить источник к коннектору {title}"),
    "source_new": ("New source", "Новый источник"),
    "source_added": ("Source added.", "Источник добавлен."),
    "source_delete": ("Delete", "Удалить"),
    "source_delete_aria": ("Delete source {title}", "Удалить источник {title}"),
    "source_delete_title": ("Delete source “{title}”?", "Удалить источник «{title}»?"),
    "source_delete_text": ("BI Builder loses the source for good. Bitrix24 refuses while datasets use it.",
                           "Источник будет удалён из BI-конструктора окончательно. Битрикс24 откажет, пока его "
                           "используют наборы данных."),
    "source_deleted": ("Source “{title}” deleted.", "Источник «{title}» удалён."),
    "delete_for_good": ("Delete for good", "Удалить окончательно"),
    "source_test": ("Test connection", "Проверить подключение"),
    "source_test_aria": ("Test connection of source {title}", "Проверить подключение источника {title}"),
    "source_testing": ("Asking the connector the way Bitrix24 does…", "Запрос к коннектору, как это делает Битрикс24…"),
    "field_secretSettings": ("Secret parameters", "Секретные параметры"),
    "secretSettings_hint": ("Codes whose values are never shown, one per line (kept by the app, not by Bitrix24). "
                            "Left empty on a new connector: codes containing password, secret, token, key, pass or pwd.",
                            "Коды, значения которых не показываются, по одному в строке (хранит приложение, а не Битрикс24). "
                            "Если у нового коннектора оставить пустым: коды, содержащие password, secret, token, key, "
                            "pass или pwd."),
    "last_change": ("Last change: {when} by {who} ({via})", "Последнее изменение: {when}, {who} ({via})"),
    "last_change_none": ("No change recorded by the app yet.", "Приложение пока не записало изменений."),
    "via_tab": ("in the tab", "во вкладке"),
    "via_api": ("through the API", "через API"),
    "via_cli": ("from the command line", "из командной строки"),
    "via_plan": ("by a plan", "планом"),
    "history": ("History", "История"),
    "history_empty": ("No changes recorded yet.", "Изменений пока нет."),
    "history_revert": ("Revert", "Вернуть"),
    "history_revert_aria": ("Revert the change of {when}", "Вернуть изменение от {when}"),
    "history_reverted": ("Change reverted.", "Изменение отменено."),
    "history_secret": ("secret, not shown", "секрет, не показывается"),
    "conflict_title": ("Someone else changed this meanwhile", "Кто-то изменил это, пока вы редактировали"),
    "conflict_text": ("{who} saved a change {when}. Compare and choose which version to keep.",
                      "{who} сохранил изменение {when}. Сравните и выберите, какую версию оставить."),
    "conflict_field": ("Field", "Поле"),
    "conflict_yours": ("Yours", "Ваше"),
    "conflict_theirs": ("Theirs (saved now)", "Их (сохранено сейчас)"),
    "conflict_keep_theirs": ("Keep theirs", "Оставить их версию"),
    "conflict_overwrite": ("Overwrite with mine", "Перезаписать своей"),
    "conflict_kept": ("Their version is loaded; your edits were dropped.", "Загружена их версия; ваши правки отброшены."),
    "editor_search": ("Find a user by name", "Найти пользователя по имени"),
    "editor_search_none": ("No user with that name.", "Пользователей с таким именем нет."),
    "editor_allow_aria": ("Allow {name} to edit", "Разрешить изменять: {name}"),
    "editor_remove_aria": ("Remove {name} from the editors", "Убрать {name} из редакторов"),
    "close": ("Close", "Закрыть"),
    "change_line": ("{when} by {who} ({via})", "{when}, {who} ({via})"),
    "action_create": ("Created", "Создание"),
    "action_revert": ("Reverted an earlier change", "Отмена прежнего изменения"),
    "action_delete": ("Deleted", "Удаление"),
}


def text(key: str, lang: str = "en") -> str:
    return _pick(TEXTS[key], lang)


def ui_texts(lang: str = "en") -> dict[str, str]:
    """Every interface text of the tab, in one language (rendered into the page)."""
    return {key: _pick(pair, lang) for key, pair in UI.items()}
