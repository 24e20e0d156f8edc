"""The sandbox's demo database: a SQLite file of companies, products, deals and their line items.

It is generated at start from a seed, so every run (and every test) sees the same realistic
sample: about 300 companies, 60 products, 12,000 deals over the two years before `today` and
some 30,000 deal items, plus the view `deal_totals_by_month`. Values are stored the way SQLite
usually stores them (ISO text for dates, 0/1 for booleans) under declared types such as DATETIME,
DATE and NUMERIC(12, 2), so SQLAlchemy's inspector reports those types.
"""
from __future__ import annotations

import bisect
import os
import random
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import accumulate
from pathlib import Path

DEMO_TABLES = ("companies", "products", "deals", "deal_items")
DEMO_VIEW = "deal_totals_by_month"

COMPANY_COUNT = 300
DEAL_COUNT = 12_000
HISTORY_DAYS = 730
NEWEST_COMPANY_AGE_DAYS = 30  # so even the newest company has had time to open deals

OPEN_STAGES = ("NEW", "PREPARATION", "PROPOSAL", "NEGOTIATION")
STAGES = OPEN_STAGES + ("WON", "LOST")
OPEN_STAGE_PROBABILITY = {"NEW": 0.1, "PREPARATION": 0.25, "PROPOSAL": 0.45, "NEGOTIATION": 0.7}
WIN_RATE = 0.42
UNASSIGNED_SHARE = 0.04
ITEM_COUNT_WEIGHTS = {1: 20, 2: 30, 3: 27, 4: 14, 5: 9}  # about 2.5 items a deal

SCHEMA = (
    """CREATE TABLE companies (
        id INTEGER PRIMARY KEY,
        name VARCHAR(120) NOT NULL,
        industry VARCHAR(60) NOT NULL,
        city VARCHAR(60) NOT NULL,
        country VARCHAR(2) NOT NULL,
        created_at DATETIME NOT NULL,
        is_partner BOOLEAN NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE products (
        id INTEGER PRIMARY KEY,
        sku VARCHAR(20) NOT NULL UNIQUE,
        title VARCHAR(120) NOT NULL,
        category VARCHAR(40) NOT NULL,
        unit_price NUMERIC(12, 2) NOT NULL,
        in_stock INTEGER
    )""",
    f"""CREATE TABLE deals (
        id INTEGER PRIMARY KEY,
        title VARCHAR(200) NOT NULL,
        company_id INTEGER NOT NULL REFERENCES companies (id),
        stage VARCHAR(20) NOT NULL CHECK (stage IN ({", ".join(f"'{stage}'" for stage in STAGES)})),
        amount NUMERIC(14, 2) NOT NULL,
        currency VARCHAR(3) NOT NULL,
        created_at DATETIME NOT NULL,
        closed_on DATE,
        owner VARCHAR(80),
        probability REAL NOT NULL
    )""",
    """CREATE TABLE deal_items (
        id INTEGER PRIMARY KEY,
        deal_id INTEGER NOT NULL REFERENCES deals (id),
        product_id INTEGER NOT NULL REFERENCES products (id),
        quantity INTEGER NOT NULL,
        price NUMERIC(12, 2) NOT NULL
    )""",
    "CREATE INDEX deals_company_id ON deals (company_id)",
    "CREATE INDEX deals_created_at ON deals (created_at)",
    "CREATE INDEX deal_items_deal_id ON deal_items (deal_id)",
    f"""CREATE VIEW {DEMO_VIEW} AS
        SELECT substr(created_at, 1, 7) AS month, stage, COUNT(*) AS deals, ROUND(SUM(amount), 2) AS amount
        FROM deals
        GROUP BY month, stage
        ORDER BY month, stage""",
)


@dataclass(frozen=True)
class Country:
    currency: str
    legal_forms: tuple[str, ...]
    cities: tuple[str, ...]
    weight: int


COUNTRIES = {
    "US": Country("USD", ("Inc.", "LLC", "Corp."), ("New York", "Chicago", "Austin", "Seattle", "Boston"), 24),
    "DE": Country("EUR", ("GmbH", "AG"), ("Berlin", "Munich", "Hamburg", "Cologne", "Frankfurt"), 14),
    "GB": Country("GBP", ("Ltd", "PLC"), ("London", "Manchester", "Leeds", "Bristol", "Edinburgh"), 12),
    "PL": Country("PLN", ("Sp. z o.o.",), ("Warsaw", "Kraków", "Wrocław", "Gdańsk", "Poznań"), 9),
    "ES": Country("EUR", ("S.L.", "S.A."), ("Madrid", "Barcelona", "Valencia", "Seville"), 7),
    "BR": Country("BRL", ("Ltda.", "S.A."), ("São Paulo", "Rio de Janeiro", "Curitiba", "Belo Horizonte"), 8),
    "MX": Country("MXN", ("S.A. de C.V.",), ("Mexico City", "Guadalajara", "Monterrey"), 6),
    "AE": Country("AED", ("FZ-LLC", "LLC"), ("Dubai", "Abu Dhabi"), 4),
    "RU": Country("RUB", ("LLC",), ("Moscow", "Saint Petersburg", "Kazan", "Novosibirsk"), 6),
}
# Companies with Russian names and their cities, as a CRM in the region would hold them.
CYRILLIC_COUNTRIES = {
    "RU": ("Москва", "Санкт-Петербург", "Казань", "Новосибирск", "Екатеринбург", "Нижний Новгород"),
    "KZ": ("Алматы", "Астана"),
    "BY": ("Минск", "Гомель"),
}
CYRILLIC_CURRENCIES = {"RU": "RUB", "KZ": "KZT", "BY": "BYN"}
UNITS_PER_USD = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "PLN": 3.95, "BRL": 5.1, "MXN": 17.2,
                 "AED": 3.67, "RUB": 91.0, "KZT": 455.0, "BYN": 3.25}

NAME_ROOTS = (
    "Northwind", "Blue Harbor", "Silverline", "Granite Peak", "Brightwave", "Redwood", "Ironclad",
    "Summit", "Lakeside", "Evergreen", "Harborview", "Pioneer", "Atlas", "Orion", "Nimbus",
    "Crescent", "Maple Leaf", "Falcon", "Keystone", "Horizon", "Sterling", "Vertex", "Beacon",
    "Riverbend", "Oakridge", "Starlight", "Copperfield", "Westbrook", "Greenfield", "Bluestone",
)
# The second word of a company name, and the industry it implies.
NAME_INDUSTRIES = {
    "Logistics": "Logistics", "Freight": "Logistics", "Foods": "Food & Beverage",
    "Bakeries": "Food & Beverage", "Analytics": "IT Services", "Software": "Software",
    "Systems": "IT Services", "Dental": "Healthcare", "Clinics": "Healthcare", "Motors": "Automotive",
    "Energy": "Energy", "Solar": "Energy", "Textiles": "Manufacturing", "Machinery": "Manufacturing",
    "Pharma": "Pharmaceuticals", "Construction": "Construction", "Builders": "Construction",
    "Retail": "Retail", "Outfitters": "Retail", "Media": "Media", "Travel": "Travel & Hospitality",
    "Hotels": "Travel & Hospitality", "Farms": "Agriculture", "Robotics": "Manufacturing",
    "Consulting": "Professional Services", "Insurance": "Financial Services", "Capital": "Financial Services",
}
CYRILLIC_NAMES = {
    "Ромашка": "Retail", "Вектор": "IT Services", "Техносфера": "Software", "Северный ветер": "Energy",
    "Альфа-Строй": "Construction", "Берёзка": "Food & Beverage", "Гранит": "Construction",
    "Сибирские сети": "Telecommunications", "Волга-Логистик": "Logistics",
    "Уральские машины": "Manufacturing",
    "Кедр": "Agriculture", "Парус": "Travel & Hospitality", "Меридиан": "Professional Services",
    "Полюс-Софт": "Software", "Дельта Плюс": "Financial Services", "Континент": "Logistics",
    "Радуга": "Media", "Орбита": "Telecommunications", "Светоч": "Healthcare", "Медтехника": "Healthcare",
    "Горизонт": "Travel & Hospitality", "Заря": "Agriculture", "Фарм-Сервис": "Pharmaceuticals",
    "Стройресурс": "Construction", "Инфотех": "IT Services", "Балтийский берег": "Food & Beverage",
    "Энергосбыт": "Energy", "Автомир": "Automotive", "Текстиль-Про": "Manufacturing", "Лента Медиа": "Media",
}
CYRILLIC_LEGAL_FORMS = ("ООО", "АО")
CYRILLIC_COMPANY_COUNT = 24
PARTNER_SHARE = 0.12

OWNERS = (
    "Anna Smirnova", "Dmitry Volkov", "Olga Petrova", "Sergey Kuznetsov", "Emily Carter",
    "James Walker", "Sofia Müller", "Lukas Schneider", "Marta Kowalska", "Carlos Mendes",
    "Lucía García", "Priya Nair", "Анна Соколова", "Игорь Лебедев", "Екатерина Морозова",
    "Tom Becker", "Hannah Lee", "Omar Haddad",
)
DEAL_KINDS = (
    "Annual renewal", "New subscription", "Pilot project", "Hardware refresh", "Store rollout",
    "Upsell: analytics", "Onboarding package", "Replacement order", "Framework agreement",
    "Expansion", "Support contract", "Training for sales team",
)
CYRILLIC_DEAL_KINDS = (
    "Продление лицензии", "Пилотный проект", "Поставка оборудования", "Внедрение CRM",
    "Расширение", "Договор поддержки", "Обучение сотрудников",
)

# (category, title, unit price in USD, typical quantity range, stocked?)
PRODUCT_LINES = (
    ("Software", "CRM seat, annual", 180, (5, 200), False),
    ("Software", "Analytics add-on, annual", 960, (1, 3), False),
    ("Software", "Telephony add-on, annual", 420, (1, 5), False),
    ("Software", "E-commerce connector, annual", 1500, (1, 2), False),
    ("Software", "Document automation, annual", 640, (1, 4), False),
    ("Software", "Helpdesk seat, annual", 240, (3, 80), False),
    ("Software", "Marketing automation, annual", 1100, (1, 3), False),
    ("Hardware", "Barcode scanner", 129, (1, 40), True),
    ("Hardware", "Thermal receipt printer", 249, (1, 25), True),
    ("Hardware", "POS terminal", 899, (1, 15), True),
    ("Hardware", "Rugged tablet 10\"", 649, (1, 30), True),
    ("Hardware", "Label printer", 319, (1, 10), True),
    ("Hardware", "Wi-Fi access point", 189, (1, 20), True),
    ("Hardware", "Network switch, 24-port", 459, (1, 6), True),
    ("Hardware", "Docking station", 179, (1, 50), True),
    ("Hardware", "Monitor 27\"", 289, (1, 50), True),
    ("Hardware", "Laptop 14\"", 1190, (1, 40), True),
    ("Services", "Onboarding workshop", 1200, (1, 3), False),
    ("Services", "Data migration", 2500, (1, 2), False),
    ("Services", "Custom integration, per day", 850, (1, 20), False),
    ("Services", "Consulting hour", 150, (2, 40), False),
    ("Services", "On-site installation", 600, (1, 5), False),
    ("Services", "Process audit", 1900, (1, 1), False),
    ("Services", "Report development", 420, (1, 12), False),
    ("Services", "Telephony setup", 350, (1, 4), False),
    ("Training", "Administrator course", 490, (1, 6), False),
    ("Training", "Sales team bootcamp", 2900, (1, 2), False),
    ("Training", "End-user webinar", 120, (1, 10), False),
    ("Training", "Manager certification", 690, (1, 8), False),
    ("Support", "Premium support, annual", 1800, (1, 1), False),
    ("Support", "Extended warranty, 2 years", 99, (1, 40), False),
    ("Support", "Priority support, monthly", 190, (1, 12), False),
    ("Support", "Dedicated success manager, annual", 6500, (1, 1), False),
    ("Supplies", "Thermal paper rolls, box of 50", 39, (5, 200), True),
    ("Supplies", "Label rolls, pack of 12", 27, (5, 150), True),
    ("Supplies", "Scanner charging cradle", 45, (1, 40), True),
)
SOFTWARE_EDITIONS = (("Basic", 0.6), ("Professional", 1.0), ("Enterprise", 1.8))
HARDWARE_GRADES = (("", 1.0), ("Pro ", 1.45))
SKU_PREFIXES = {
    "Software": "SW", "Hardware": "HW", "Services": "SV", "Training": "TR", "Support": "SP", "Supplies": "SU",
}
CATEGORY_POPULARITY = {"Software": 5, "Hardware": 4, "Services": 3, "Training": 1, "Support": 2, "Supplies": 2}
DISCOUNTS = (0, 0, 0, 0.05, 0.1, 0.15, 0.2)
HOUR_WEIGHTS = (0, 0, 0, 0, 0, 0, 1, 3, 8, 12, 14, 13, 9, 11, 13, 12, 10, 7, 4, 2, 1, 1, 0, 0)  # office hours
HOUR_CUM_WEIGHTS = tuple(accumulate(HOUR_WEIGHTS))


@dataclass(frozen=True)
class Profile:
    """Who a company is, before it gets an id and a creation date."""
    name: str
    industry: str
    city: str
    country: str
    currency: str
    cyrillic: bool


@dataclass(frozen=True)
class Company:
    id: int
    profile: Profile
    created_at: datetime
    is_partner: bool


@dataclass(frozen=True)
class Product:
    id: int
    category: str
    unit_price_usd: float
    quantities: tuple[int, int]


def create_demo_database(path: Path, *, seed: int = 24, today: date | None = None) -> Path:
    """Write a fresh demo database at `path`, replacing any file there atomically; returns `path`.

    The same `seed` and `today` always give the same data.
    """
    path = Path(path)
    rows = _generate_rows(random.Random(seed), today or date.today())
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temp = Path(temp_name)
    try:
        _write_database(temp, rows)
        _remove_journals(path)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def _generate_rows(rng: random.Random, today: date) -> dict[str, list[tuple]]:
    """Every table's rows, in column order, for the two years before `today`."""
    start = today - timedelta(days=HISTORY_DAYS)
    companies = _generate_companies(rng, start, today - timedelta(days=NEWEST_COMPANY_AGE_DAYS))
    products, product_rows = _generate_products(rng)
    deal_rows, item_rows = _generate_deals(rng, companies, products, today)
    return {
        "companies": [_company_row(company) for company in companies],
        "products": product_rows,
        "deals": deal_rows,
        "deal_items": item_rows,
    }


def _write_database(path: Path, rows: dict[str, list[tuple]]) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN")
        for statement in SCHEMA:
            connection.execute(statement)
        for table in DEMO_TABLES:
            placeholders = ", ".join("?" * len(rows[table][0]))
            connection.executemany(f"INSERT INTO {table} VALUES ({placeholders})", rows[table])
        connection.execute("COMMIT")
    finally:
        connection.close()


def _remove_journals(path: Path) -> None:
    # A journal or WAL left over from the old file would be replayed into the new one.
    for suffix in ("-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --- companies -------------------------------------------------------------------------------

def _generate_companies(rng: random.Random, start: date, newest: date) -> list[Company]:
    """Companies with ids in order of creation, as a CRM assigns them."""
    latin_count = COMPANY_COUNT - CYRILLIC_COMPANY_COUNT
    profiles = _latin_profiles(rng, latin_count) + _cyrillic_profiles(rng, CYRILLIC_COMPANY_COUNT)
    rng.shuffle(profiles)
    moments = sorted(_moment(rng, start, newest) for _ in profiles)
    return [
        Company(id=number, profile=profile, created_at=moment, is_partner=rng.random() < PARTNER_SHARE)
        for number, (profile, moment) in enumerate(zip(profiles, moments), start=1)
    ]


def _latin_profiles(rng: random.Random, count: int) -> list[Profile]:
    pairs = rng.sample([(root, word) for root in NAME_ROOTS for word in NAME_INDUSTRIES], count)
    codes = rng.choices(list(COUNTRIES), weights=[country.weight for country in COUNTRIES.values()], k=count)
    profiles = []
    for (root, word), code in zip(pairs, codes):
        country = COUNTRIES[code]
        name = f"{root} {word} {rng.choice(country.legal_forms)}"
        city = rng.choice(country.cities)
        profiles.append(Profile(name, NAME_INDUSTRIES[word], city, code, country.currency, cyrillic=False))
    return profiles


def _cyrillic_profiles(rng: random.Random, count: int) -> list[Profile]:
    classic = "ООО Ромашка"  # the proverbial sample company, always present
    words = rng.sample([word for word in CYRILLIC_NAMES if word != "Ромашка"], count - 1)
    names = [classic] + [f"{rng.choice(CYRILLIC_LEGAL_FORMS)} {word}" for word in words]
    codes = rng.choices(list(CYRILLIC_COUNTRIES), weights=(8, 1, 1), k=count)
    return [
        Profile(name, CYRILLIC_NAMES[name.split(" ", 1)[1]], rng.choice(CYRILLIC_COUNTRIES[code]), code,
                CYRILLIC_CURRENCIES[code], True)
        for name, code in zip(names, codes)
    ]


def _company_row(company: Company) -> tuple:
    profile = company.profile
    return (
        company.id, profile.name, profile.industry, profile.city, profile.country,
        _datetime_text(company.created_at), int(company.is_partner),
    )


# --- products --------------------------------------------------------------------------------

def _generate_products(rng: random.Random) -> tuple[list[Product], list[tuple]]:
    products, rows = [], []
    for category, title, price, quantities, stocked in _product_variants():
        number = len(rows) + 1
        sku = f"{SKU_PREFIXES[category]}-{1000 + number}"
        in_stock = _stock_level(rng) if stocked else None  # services and licences are not stocked
        products.append(Product(id=number, category=category, unit_price_usd=price, quantities=quantities))
        rows.append((number, sku, title, category, price, in_stock))
    return products, rows


def _product_variants() -> list[tuple]:
    """60 products: three editions of each software line, two grades of hardware, the rest as is."""
    variants = []
    for category, title, price, quantities, stocked in PRODUCT_LINES:
        if category == "Software":
            grades = [(f"{title} ({edition})", factor) for edition, factor in SOFTWARE_EDITIONS]
        elif category == "Hardware":
            grades = [(f"{prefix}{title}", factor) for prefix, factor in HARDWARE_GRADES]
        else:
            grades = [(title, 1.0)]
        for name, factor in grades:
            variants.append((category, name, round(price * factor - 0.01, 2), quantities, stocked))
    return variants


def _stock_level(rng: random.Random) -> int:
    return 0 if rng.random() < 0.1 else rng.randint(3, 800)


# --- deals and their items -------------------------------------------------------------------

def _generate_deals(
    rng: random.Random, companies: list[Company], products: list[Product], today: date
) -> tuple[list[tuple], list[tuple]]:
    """Deal rows and item rows, ids in order of creation; each deal's amount is the sum of its items."""
    # Pareto weights give a few big accounts; the cap keeps one from owning most deals.
    company_weights = list(accumulate(min(rng.paretovariate(1.5), 12) for _ in companies))
    product_weights = list(accumulate(CATEGORY_POPULARITY[product.category] for product in products))
    owner_weights = list(accumulate(rng.uniform(0.5, 2.0) for _ in OWNERS))
    accounts = rng.choices(companies, cum_weights=company_weights, k=DEAL_COUNT)
    openings = [(_moment(rng, company.created_at.date() + timedelta(days=1), today), company) for company in accounts]
    openings.sort(key=lambda opening: (opening[0], opening[1].id))
    item_counts = rng.choices(tuple(ITEM_COUNT_WEIGHTS), tuple(ITEM_COUNT_WEIGHTS.values()), k=DEAL_COUNT)
    deal_rows, item_rows = [], []
    owners = [None if rng.random() < UNASSIGNED_SHARE else owner
              for owner in rng.choices(OWNERS, cum_weights=owner_weights, k=DEAL_COUNT)]
    deals = zip(openings, item_counts, owners)
    for deal_id, ((created_at, company), item_count, owner) in enumerate(deals, start=1):
        currency = company.profile.currency if rng.random() < 0.85 else "USD"
        items = _deal_items(rng, rng.choices(products, cum_weights=product_weights, k=item_count), currency)
        item_rows += [(len(item_rows) + index, deal_id, *item) for index, item in enumerate(items, start=1)]
        amount = round(sum(quantity * price for _, quantity, price in items), 2)
        deal_rows.append(_deal_row(rng, deal_id, company, created_at, amount, currency, owner, today))
    return deal_rows, item_rows


def _deal_items(rng: random.Random, chosen: list[Product], currency: str) -> list[tuple[int, int, float]]:
    """(product_id, quantity, price) lines for the `chosen` products, priced in the deal's currency."""
    discount = rng.choice(DISCOUNTS)
    items = []
    for product in dict.fromkeys(chosen):  # the same product twice would be one line, not two
        price = round(product.unit_price_usd * UNITS_PER_USD[currency] * (1 - discount), 2)
        items.append((product.id, rng.randint(*product.quantities), price))
    return items


def _deal_row(rng: random.Random, deal_id: int, company: Company, created_at: datetime, amount: float,
              currency: str, owner: str | None, today: date) -> tuple:
    stage, closed_on = _stage(rng, created_at.date(), today)
    kind = rng.choice(CYRILLIC_DEAL_KINDS if company.profile.cyrillic else DEAL_KINDS)
    return (
        deal_id, f"{kind} — {company.profile.name}", company.id, stage, amount, currency,
        _datetime_text(created_at), closed_on.isoformat() if closed_on else None, owner,
        _probability(rng, stage),
    )


def _probability(rng: random.Random, stage: str) -> float:
    if stage in OPEN_STAGE_PROBABILITY:
        return round(OPEN_STAGE_PROBABILITY[stage] + rng.uniform(-0.05, 0.05), 2)
    return 1.0 if stage == "WON" else 0.0


def _stage(rng: random.Random, created_on: date, today: date) -> tuple[str, date | None]:
    """A deal closes after its sales cycle; one still within it sits at a stage matching its progress."""
    cycle_days = rng.randint(7, 120)
    closes_on = created_on + timedelta(days=cycle_days)
    if closes_on < today:
        return ("WON" if rng.random() < WIN_RATE else "LOST"), closes_on
    progress = (today - created_on).days / cycle_days
    return OPEN_STAGES[min(int(progress * len(OPEN_STAGES)), len(OPEN_STAGES) - 1)], None


# --- time ------------------------------------------------------------------------------------

def _moment(rng: random.Random, first_day: date, end: date) -> datetime:
    """A wall-clock moment on a day in [first_day, end), mostly on weekdays in office hours."""
    day = first_day + timedelta(days=rng.randrange((end - first_day).days))
    if day.weekday() >= 5 and rng.random() < 0.75:
        day = first_day + timedelta(days=rng.randrange((end - first_day).days))
    hour = bisect.bisect(HOUR_CUM_WEIGHTS, rng.random() * HOUR_CUM_WEIGHTS[-1])  # rng.choices, minus its overhead
    return datetime.combine(day, time(hour, rng.randrange(60), rng.randrange(60)))


def _datetime_text(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")
