"""All mapped classes, imported here so that `Base.metadata` knows every table."""

from console.db import Base
from console.models.billing import Bill, BillLine, Cycle
from console.models.customers import AuditEvent, ContactRecord, Customer, Recipient, ServicePoint
from console.models.staff import ROLES, User, UserRole

__all__ = [
    "Base",
    "AuditEvent",
    "Bill",
    "BillLine",
    "ContactRecord",
    "Customer",
    "Cycle",
    "ROLES",
    "Recipient",
    "ServicePoint",
    "User",
    "UserRole",
]
