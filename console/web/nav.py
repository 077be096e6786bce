"""The console's top navigation and the admin page's links, in one place: what each role sees.

Every blueprint is registered by create_app unconditionally, so the list is fixed here rather than
added to by each domain's modules at import time."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

from console.models.staff import ROLES


@dataclass(frozen=True)
class Link:
    endpoint: str
    label: LazyString | str
    roles: frozenset[str]


def _link(endpoint: str, label: LazyString, roles: tuple[str, ...] = ("admin",)) -> Link:
    return Link(endpoint, label, frozenset(roles))


NAV_LINKS = [
    _link("customers.search", _l("Customers"), ROLES),
    _link("inbox_rep.index", _l("Work items"), ("phone_rep",)),
    _link("inbox_am.index", _l("My accounts"), ("account_manager",)),
    _link("inbox_clerk.index", _l("Cycle exceptions"), ("clerk",)),
    _link("inbox_admin.index", _l("Cycle dashboard"), ("admin",)),
    _link("billing.index", _l("Bills"), ROLES),
    _link("paper.index", _l("Paper bills"), ("clerk", "admin")),
    _link("admin.home", _l("Administration"), ("admin",)),
]
ADMIN_LINKS = [
    _link("admin.users", _l("Users and roles")),
    _link("admin.tariffs", _l("Tariffs")),
    _link("inbox_admin.index", _l("Job queues: failed jobs and retry")),
    _link("imports.page", _l("CSV imports")),
    _link("billing.cycles_page", _l("Billing cycles")),
    _link("billing.campaigns_page", _l("Marketing campaigns")),
    _link("delivery.deliveries", _l("E-mail deliveries")),
    _link("delivery.quarantine", _l("Mail-in quarantine")),
    _link("delivery.sandbox", _l("Demo sandbox mailbox")),
]


def links_for(user, links: list[Link]) -> list[Link]:  # noqa: ANN001
    roles = getattr(user, "roles", set())
    return [link for link in links if link.roles & roles]
