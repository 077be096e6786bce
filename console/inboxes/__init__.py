"""Role inboxes, the follow-up workflow on work items, and the cycle dashboard (steps 6.2 and 6.3)."""
