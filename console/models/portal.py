"""Tables of this domain (see console/models/__init__.py)."""
