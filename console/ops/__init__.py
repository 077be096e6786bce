"""Operations: `console doctor`, `/healthz`, `/metrics`, retention (docs/deploy.md)."""
