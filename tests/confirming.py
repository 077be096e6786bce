"""Going through an in-page confirmation in a test as a person does (console/web/confirm.py): ask
(GET `<action>/confirm`, the box htmx puts beside the button), read the box's one-time token, send."""

from __future__ import annotations

import re

TOKEN = re.compile(r'name="confirm_token" value="([^"]+)"')
HX = {"HX-Request": "true"}


def token_of(html: str) -> str:
    found = TOKEN.search(html)
    assert found, "no confirmation in:\n" + html
    return found.group(1)


def ask(client, action: str, data: dict | None = None):  # noqa: ANN001, ANN201
    """The confirmation box of `action` for these values (passwords are typed into the box, not sent here)."""
    query = {k: v for k, v in (data or {}).items() if "password" not in k}
    return client.get(f"{action}/confirm", query_string=query, headers=HX)


def confirmed_post(client, action: str, data: dict | None = None, headers: dict | None = None, **kwargs):  # noqa: ANN001, ANN003, ANN201
    """Ask, then POST `data` with the box's token; the POST's response."""
    box = ask(client, action, data)
    assert box.status_code == 200, box.get_data(as_text=True)
    return client.post(action, data=(data or {}) | {"confirm_token": token_of(box.get_data(as_text=True))},
                       headers=headers, **kwargs)
