"""Links each domain adds to the console's top navigation and the admin page, so no domain edits
another's templates. Register at import time of the domain's routes module."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import LazyString


@dataclass(frozen=True)
class Link:
    endpoint: str
    label: LazyString | str
    roles: frozenset[str]
    order: int = 50


NAV_LINKS: list[Link] = []
ADMIN_LINKS: list[Link] = []


def add_nav_link(endpoint: str, label, roles, order: int = 50) -> None:  # noqa: ANN001
    NAV_LINKS.append(Link(endpoint, label, frozenset(roles), order))
    NAV_LINKS.sort(key=lambda link: link.order)


def add_admin_link(endpoint: str, label, order: int = 50) -> None:  # noqa: ANN001
    ADMIN_LINKS.append(Link(endpoint, label, frozenset({"admin"}), order))
    ADMIN_LINKS.sort(key=lambda link: link.order)


def links_for(user, links: list[Link]) -> list[Link]:  # noqa: ANN001
    roles = getattr(user, "roles", set())
    return [link for link in links if link.roles & roles]
