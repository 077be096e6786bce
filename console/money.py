"""Money is Decimal yuan with 2 places. Rounding happens here and nowhere else."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

FEN = Decimal("0.01")
ZERO = Decimal("0.00")


def money(value: Decimal | int | str) -> Decimal:
    """Round to the fen, half up (the utility's rule). Floats are refused: they are not exact."""
    if isinstance(value, float):
        raise TypeError("money from a float is not exact; pass a str or Decimal")
    return Decimal(value).quantize(FEN, rounding=ROUND_HALF_UP)


def parse_money(text: str) -> Decimal:
    """Parse an amount typed by a person or a file: at most 2 decimals, no rounding."""
    try:
        value = Decimal(text.strip().replace(",", ""))
    except (InvalidOperation, AttributeError):
        raise ValueError(f"not an amount: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not an amount: {text!r}")
    if value != value.quantize(FEN):
        raise ValueError(f"more than 2 decimal places: {text!r}")
    return value.quantize(FEN)


def to_fen(value: Decimal) -> int:
    fen = (value if type(value) is Decimal else Decimal(value)).scaleb(2)
    if fen != fen.to_integral_value():
        raise ValueError(f"amount {value} has more than 2 decimal places; round with money() first")
    return int(fen)


def from_fen(fen: int) -> Decimal:
    return Decimal(fen).scaleb(-2)  # exact: 1230 -> Decimal("12.30")


def format_yuan(value: Decimal | None) -> str:
    if value is None:
        return ""
    if not value:
        value = abs(value)  # never "-0.00" (0 - 0.00 is Decimal("-0.00"))
    return f"{value:,.2f}"
