"""Password hashing (argon2id) and the rules every password follows, staff and customers alike."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

MIN_LENGTH = 8
MAX_LENGTH = 128
# The most common passwords of public breach lists, and the obvious local ones.
COMMON_PASSWORDS = frozenset(
    """123456 123456789 12345678 password qwerty123 qwerty 1234567890 11111111 00000000 88888888
    66666666 12341234 password1 iloveyou abc12345 a1234567 qq123456 1qaz2wsx aa123456 123123123
    woaini1314 password123 admin123 admin1234 qwertyuiop 987654321 11223344 147258369 asdfghjk
    zxcvbnm1 12344321 5201314520 billpost billpost1""".split()
)


def password_problem(password: str) -> str | None:
    """None when acceptable, else the reason (in English; callers translate)."""
    if len(password) < MIN_LENGTH:
        return f"at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"at most {MAX_LENGTH} characters"
    if password.lower() in COMMON_PASSWORDS or len(set(password)) <= 2:
        return "too common; choose another"
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Spent on unknown users too, so response time does not tell whether a user exists.
DUMMY_HASH = hash_password("not-a-real-password-0")
