"""All mapped classes. Importing this package registers every table on `Base.metadata`.

Each domain keeps its tables in its own module here; import domain classes from their module
(`from console.models.paper import PrintBatch`). The core classes are re-exported below.
"""

from console.db import Base
from console.models import billing, customers, delivery, mailin, paper, portal, staff  # noqa: F401
from console.models.billing import Bill, BillLine, Cycle
from console.models.customers import AuditEvent, ContactRecord, Customer, Recipient, ServicePoint
from console.models.delivery import Delivery, DeliveryAttempt, WorkItem
from console.models.staff import ROLES, User, UserRole

__all__ = [
    "Base", "AuditEvent", "Bill", "BillLine", "ContactRecord", "Customer", "Cycle", "Delivery",
    "DeliveryAttempt", "ROLES", "Recipient", "ServicePoint", "User", "UserRole", "WorkItem",
]
