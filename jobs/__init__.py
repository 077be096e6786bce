"""RQ job functions: thin, primitive arguments, one session per job, business rules in console services."""
