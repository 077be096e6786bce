"""The customer file (step 1 of the process): who wants e-bills, by which channels, who gets copies."""

from console.customers.services import mask_id_number

__all__ = ["mask_id_number"]
