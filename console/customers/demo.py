"""Demo data: a realistic, deterministic customer file for Suzhou (`console demo-data`).

Streamed: customers, their service points and recipients are generated in batches and written with
Core executemany, so 1,000,000 customers need no more memory than one batch.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from console.audit import Actor
from console.customers.services import id_check_char
from console.db import bulk_insert, utcnow
from console.models import Customer, Recipient, ServicePoint, User

BATCH = 5000

# One staff user per role; the passwords are printed by `console serve` / `console demo-data`.
DEMO_USERS = [
    ("clerk", "clerk", "王丽 (抄核收)", "demo-clerk-2026"),
    ("rep", "phone_rep", "陈静 (客服)", "demo-rep-2026"),
    ("manager", "account_manager", "周建国 (客户经理)", "demo-manager-2026"),
    ("manager2", "account_manager", "孙晓梅 (客户经理)", "demo-manager-2026"),
    ("admin", "admin", "系统管理员", "demo-admin-2026"),
]

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
SURNAME_PINYIN = dict(zip(SURNAMES, (
    "wang li zhang liu chen yang huang zhao wu zhou xu sun ma zhu hu guo he gao lin luo zheng liang xie song "
    "tang xu han feng deng cao peng zeng xiao tian dong yuan pan yu jiang cai yu du ye cheng su wei lv ding "
    "ren shen yao lu jiang cui zhong tan lu wang fan jin shi liao jia xia wei fu fang bai zou meng xiong qin "
    "qiu jiang yin xue yan duan lei hou long shi tao li he gu mao hao gong shao wan qian yan qin wu dai mo "
    "kong xiang tang"
).split(), strict=True))
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国文斌宇浩凯鹏辉晨雪梅琳佳欣怡子涵梓轩雨桐俊杰思远嘉怡"
DISTRICTS = [  # (district, postal code, streets)
    ("姑苏区", "215000", ["人民路", "干将路", "十全街", "凤凰街", "平江路", "学士街", "养育巷"]),
    ("姑苏区", "215008", ["金门路", "石路", "广济路", "山塘街"]),
    ("虎丘区", "215011", ["长江路", "珠江路", "狮山路", "金山路", "竹园路"]),
    ("吴中区", "215048", ["东吴北路", "宝带东路", "吴中大道", "越溪路"]),
    ("相城区", "215031", ["阳澄湖路", "相城大道", "华元路", "采莲路"]),
    ("吴江区", "215060", ["中山路", "鲈乡路", "仲英大道", "江陵路"]),
    ("工业园区", "215021", ["星海街", "现代大道", "苏州大道", "金鸡湖大道", "星湖街"]),
    ("工业园区", "215026", ["唯亭街道", "青秋浦路", "葑亭大道"]),
    ("虎丘区", "215009", ["滨河路", "塔园路", "运河路"]),
    ("吴中区", "215044", ["南湖路", "迎春路", "友新路"]),
]
ESTATES = ["花园", "新村", "公寓", "小区", "苑", "家园", "华庭", "名邸"]
COMPANY_PLACES = ["苏州", "苏州市", "苏州工业园区", "苏州高新区", "吴江", "昆山"]
COMPANY_BRANDS = ["恒信", "瑞丰", "德盛", "宏达", "永昌", "华星", "金桥", "东方", "新世纪", "天成", "汇通", "姑苏", "金鸡湖", "同创"]
COMMERCE = ["商贸有限公司", "餐饮管理有限公司", "酒店有限公司", "超市", "物业管理有限公司", "科技有限公司", "文化传媒有限公司"]
INDUSTRY = ["精密机械有限公司", "电子科技有限公司", "纺织有限公司", "化工有限公司", "新材料股份有限公司", "汽车零部件有限公司"]
MAIL_DOMAINS = ["qq.example.com", "163.example.com", "126.example.com", "sina.example.com", "example.net"]
REGION_CODES = ["320502", "320505", "320506", "320507", "320508", "320509", "320571", "320581", "320582", "320585"]


@dataclass
class Batch:
    customers: list[dict] = field(default_factory=list)
    points: list[dict] = field(default_factory=list)
    recipients: list[dict] = field(default_factory=list)


class DemoGenerator:
    """Deterministic for a seed: the n-th customer is always the same person."""

    def __init__(self, seed: int, managers: list[int], today: date | None = None):
        self.rng = random.Random(seed)
        self.managers = managers
        self.today = today or date(2026, 11, 1)
        self.now = utcnow()

    def _name(self) -> tuple[str, str]:
        surname = self.rng.choice(SURNAMES)
        given = "".join(self.rng.choice(GIVEN) for _ in range(self.rng.choice((1, 2, 2))))
        return surname + given, SURNAME_PINYIN.get(surname, "user")

    def _address(self) -> tuple[str, str]:
        district, code, streets = self.rng.choice(DISTRICTS)
        street = self.rng.choice(streets)
        if self.rng.random() < 0.7:
            estate = street[:2] + self.rng.choice(ESTATES)
            detail = f"{estate}{self.rng.randint(1, 60)}幢{self.rng.randint(1, 6)}0{self.rng.randint(1, 4)}室"
        else:
            detail = f"{self.rng.randint(1, 999)}号"
        return f"江苏省苏州市{district}{street}{detail}", code

    def _id_number(self) -> str:
        born = date(1940, 1, 1).toordinal() + self.rng.randint(0, 60 * 365)
        birth = date.fromordinal(born).strftime("%Y%m%d")
        first17 = self.rng.choice(REGION_CODES) + birth + f"{self.rng.randint(0, 999):03d}"
        return first17 + id_check_char(first17)

    def _phone(self) -> str:
        if self.rng.random() < 0.85:
            return "1" + self.rng.choice(("38", "39", "50", "51", "52", "58", "59", "36", "37", "35", "88", "89", "77")) + (
                f"{self.rng.randint(0, 99_999_999):08d}"
            )
        return f"0512-6{self.rng.randint(0, 9_999_999):07d}"

    def customer(self, n: int) -> tuple[dict, list[dict], list[dict]]:
        rng = self.rng
        account_no = f"32{n:08d}"
        roll = rng.random()
        key_account = roll < 0.02
        if key_account:
            customer_type = "industrial" if rng.random() < 0.6 else "commercial"
        else:
            customer_type = "residential" if roll < 0.90 else ("commercial" if roll < 0.97 else "industrial")
        person, pinyin = self._name()
        address, postcode = self._address()
        if customer_type == "residential":
            name = person
            email_local = f"{pinyin}{n}"
        else:
            words = COMMERCE if customer_type == "commercial" else INDUSTRY
            name = rng.choice(COMPANY_PLACES) + rng.choice(COMPANY_BRANDS) + rng.choice(words)
            email_local = f"finance{n}"
        wants_ebill = rng.random() < (0.9 if key_account else 0.62)
        channels = set()
        if wants_ebill:
            channels.add("portal")
            if rng.random() < 0.75:
                channels.add("email")
        elif key_account:
            channels.add("paper")
        else:  # no e-bill wanted, and paper is for key accounts only for now: the web page remains
            channels.add("portal")
        if key_account and rng.random() < 0.4:
            channels.add("paper")
        email = f"{email_local}@{rng.choice(MAIL_DOMAINS)}" if ("email" in channels or rng.random() < 0.4) else None
        if email and n % 41 == 0:  # the demo mail sandbox fails these: the work-item loop shows in the demo
            email = "nosuch." + email
        elif email and n % 53 == 0:  # ... and never answers for these: resend after CONFIRM_AFTER, then a work item
            email = "silent." + email
        collective = key_account and rng.random() < 0.7
        customer = {
            "id": n,
            "account_no": account_no,
            "name": name,
            "customer_type": customer_type,
            "key_account": key_account,
            "account_manager_id": rng.choice(self.managers) if key_account and self.managers else None,
            "id_number": self._id_number() if customer_type == "residential" else None,
            "phone": self._phone(),
            "email": email,
            "postal_address": address,
            "postal_code": postcode,
            "wants_ebill": wants_ebill,
            "channel_portal": "portal" in channels,
            "channel_email": "email" in channels,
            "channel_paper": "paper" in channels,
            "attach_pdf": None,
            "collective_billing": collective,
            "collective_billing_since": self.today if collective else None,
            "status": "active",
            "closed_on": None,
            "created_at": self.now,
            "updated_at": self.now,
        }
        points = []
        count = rng.randint(3, 60) if key_account else (1 if customer_type == "residential" else rng.randint(1, 2))
        tariff = {"residential": "RES", "commercial": "COM", "industrial": "IND"}[customer_type]
        if customer_type == "residential" and rng.random() < 0.3:
            tariff = "RES-TOU"
        base_day = rng.randint(1, 28)
        for i in range(count):
            point_address, _code = (address, postcode) if i == 0 else self._address()
            read_day = base_day if i % 3 else (base_day + rng.choice((0, 2, 5, 12, 15)) - 1) % 28 + 1
            points.append({
                "customer_id": n,
                "point_no": f"{account_no}{i + 1:03d}",
                "address": point_address,
                "meter_no": f"M{n:08d}{i + 1:03d}",
                "tariff_code": tariff,
                "read_day": read_day,
                "is_billing_point": i == 0,
                "status": "active",
                "created_at": self.now,
            })
        return customer, points, self._recipients(n, customer, pinyin)

    def _recipients(self, n: int, customer: dict, pinyin: str) -> list[dict]:
        rng = self.rng
        found: list[dict] = []

        def add(name: str, relation: str, channel: str, address: str, copies: int = 1) -> None:
            if any(r["channel"] == channel and r["address"] == address for r in found):
                return
            found.append({"customer_id": n, "name": name, "relationship": relation, "channel": channel,
                          "address": address, "copies": copies, "active": True})

        domain = rng.choice(MAIL_DOMAINS)
        roll = rng.random()
        if customer["customer_type"] == "residential":
            if roll < 0.08:  # rented out: the tenant gets the bill, the landlord a copy
                tenant, _ = self._name()
                add(tenant, "tenant", "email", f"tenant{n}@{domain}")
                add(customer["name"], "landlord", "email", f"{pinyin}.home{n}@{domain}")
            elif roll < 0.12:  # an elderly customer's son or daughter as proxy
                proxy, proxy_pinyin = self._name()
                add(proxy, "proxy", "email", f"{proxy_pinyin}{n}@{domain}")
            elif roll < 0.14:
                other, _ = self._name()
                add(other, "other", "email", f"family{n}@{domain}")
        else:
            if roll < 0.5:
                add("财务部", "finance", "email", f"caiwu{n}@{domain}")
            if customer["key_account"]:
                if rng.random() < 0.5:  # companies wanting two paper copies
                    add("财务部", "finance", "paper", customer["postal_address"], copies=2)
                if rng.random() < 0.3:
                    landlord, _ = self._name()
                    add(landlord + "（物业）", "landlord", "email", f"wuye{n}@{domain}")
            elif roll > 0.9:
                add("总经理办公室", "other", "email", f"office{n}@{domain}")
        return found

    def batches(self, first: int, last: int, size: int = BATCH) -> Iterator[Batch]:
        batch = Batch()
        for n in range(first, last + 1):
            customer, points, recipients = self.customer(n)
            batch.customers.append(customer)
            batch.points.extend(points)
            batch.recipients.extend(recipients)
            if len(batch.customers) >= size:
                yield batch
                batch = Batch()
        if batch.customers:
            yield batch


def _demo_users(connection: Connection) -> list[int]:
    """Creates the demo staff users that are missing; returns the account managers' ids."""
    from sqlalchemy.orm import Session

    from console.staff.services import create_user

    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    for username, role, display, password in DEMO_USERS:
        if session.scalar(select(User.id).where(User.username == username)) is None:
            create_user(session, username, password, [role], Actor.system(), display)
    session.flush()
    ids = [session.scalar(select(User.id).where(User.username == u)) for u, r, _d, _p in DEMO_USERS
           if r == "account_manager"]
    session.commit()  # releases the savepoint; the caller's transaction commits
    session.close()
    return [i for i in ids if i is not None]


def seed_demo(connection: Connection, customers: int, seed: int = 1, progress: Any = None) -> dict[str, int]:
    """Seeds `customers` demo customers into an empty customer file; the caller commits.

    Returns the row counts written.
    """
    if connection.scalar(select(func.count()).select_from(Customer.__table__)):
        raise ValueError("the customer file is not empty; demo data goes into an empty database only")
    managers = _demo_users(connection)
    generator = DemoGenerator(seed, managers)
    counts = {"customers": 0, "service_points": 0, "recipients": 0}
    for batch in generator.batches(1, customers):
        bulk_insert(connection, Customer.__table__, batch.customers)
        bulk_insert(connection, ServicePoint.__table__, batch.points)
        bulk_insert(connection, Recipient.__table__, batch.recipients)
        counts["customers"] += len(batch.customers)
        counts["service_points"] += len(batch.points)
        counts["recipients"] += len(batch.recipients)
        if progress:
            progress(counts["customers"])
    if connection.dialect.name == "postgresql":  # explicit ids: move the sequences past them
        for table in ("customers", "service_points", "recipients"):
            connection.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT max(id) FROM {table}), 1))"  # noqa: S608
            ))
        connection.execute(text("ANALYZE customers"))
    else:
        connection.execute(text("ANALYZE"))
    return counts


def sign_in_lines() -> list[str]:
    lines = ["Demo sign-ins (user / password / role):"]
    lines += [f"  {username:<9} {password:<20} {role}" for username, role, _d, password in DEMO_USERS]
    return lines


def ensure_demo_data(app: Flask, customers: int) -> list[str]:
    """Seeds the demo when the database has no customers yet; returns the lines `serve` prints."""
    engine = app.extensions["billpost.engine"]
    with engine.connect() as connection:
        has_customers = connection.scalar(select(func.count()).select_from(select(Customer.id).limit(1).subquery()))
    lines: list[str] = []
    if not has_customers:
        with engine.begin() as connection:
            counts = seed_demo(connection, customers)
        lines.append(
            f"Demo data: {counts['customers']} customers, {counts['service_points']} service points, "
            f"{counts['recipients']} recipients"
        )
        return lines + sign_in_lines()
    with engine.connect() as connection:  # never adds known passwords to a database in use
        names = set(connection.scalars(select(User.username).where(User.username.in_([u[0] for u in DEMO_USERS]))))
    return sign_in_lines() if names == {u[0] for u in DEMO_USERS} else []
