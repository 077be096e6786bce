"""Marketing campaigns (step 8): managed by admins, applied at bill generation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from console.audit import Actor, record_audit
from console.models.billing import Campaign
from console.models.customers import CUSTOMER_TYPES

FIELDS = ("name", "text_zh", "text_en", "customer_types", "starts_on", "ends_on", "priority", "active")


@dataclass
class CampaignForm:
    name: str = ""
    text_zh: str = ""
    text_en: str = ""
    customer_types: tuple[str, ...] = ()
    starts_on: str = ""
    ends_on: str = ""
    priority: str = "0"
    active: bool = True

    def clean(self) -> tuple[dict, dict[str, str]]:
        """(values, errors by field); errors are English msgids the route translates."""
        errors: dict[str, str] = {}
        values: dict = {"name": self.name.strip(), "text_zh": self.text_zh.strip(), "text_en": self.text_en.strip(),
                        "active": bool(self.active)}
        for field in ("name", "text_zh", "text_en"):
            if not values[field]:
                errors[field] = "Required."
        if len(values["name"]) > 100:
            errors["name"] = "At most 100 characters."
        for field in ("text_zh", "text_en"):
            if len(values[field]) > 500:
                errors[field] = "At most 500 characters."
        types = [t for t in self.customer_types if t in CUSTOMER_TYPES]
        if not types or len(types) != len(self.customer_types):
            errors["customer_types"] = "Choose at least one customer type."
        values["customer_types"] = sorted(set(types), key=CUSTOMER_TYPES.index)
        for field in ("starts_on", "ends_on"):
            try:
                values[field] = date.fromisoformat(getattr(self, field))
            except ValueError:
                errors[field] = "Not a date (YYYY-MM-DD)."
        if "starts_on" not in errors and "ends_on" not in errors and values["ends_on"] < values["starts_on"]:
            errors["ends_on"] = "The window ends before it starts."
        try:
            values["priority"] = int(self.priority)
            if not -1000 <= values["priority"] <= 1000:
                raise ValueError
        except ValueError:
            errors["priority"] = "A whole number from -1000 to 1000."
        return values, errors

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignForm:
        return cls(campaign.name, campaign.text_zh, campaign.text_en, tuple(campaign.customer_types),
                   campaign.starts_on.isoformat(), campaign.ends_on.isoformat(), str(campaign.priority),
                   campaign.active)


def _snapshot(campaign: Campaign) -> dict:
    return {f: (v.isoformat() if isinstance(v := getattr(campaign, f), date) else v) for f in FIELDS}


def list_campaigns(session: Session) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.active.desc(), Campaign.priority.desc(),
                                                          Campaign.id)))


def save_campaign(session: Session, values: dict, actor: Actor, campaign: Campaign | None = None) -> Campaign:
    before = _snapshot(campaign) if campaign else None
    if campaign is None:
        campaign = Campaign(**values)
        session.add(campaign)
    else:
        for key, value in values.items():
            setattr(campaign, key, value)
    session.flush()
    record_audit(session, actor, "campaign.create" if before is None else "campaign.update", "campaign",
                 campaign.id, before=before, after=_snapshot(campaign))
    return campaign
