"""Password hashing (argon2id) and the rules every password follows, staff and customers alike.

A password is refused when it is shorter than 8 or longer than 128 characters, when it is one of
the common or breached passwords (zxcvbn's list of the 30,000 most frequent passwords of public
breach corpora, shipped in the zxcvbn package from PyPI, matched also through l33t spellings and
reversed, plus a few local ones), or when zxcvbn estimates fewer than 10^6 guesses (a keyboard walk,
a repeat, a sequence, a date, a common word). Any Unicode is accepted unchanged (no normalisation,
no composition rules), as NIST SP 800-63B and OWASP ASVS ask.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

_hasher = PasswordHasher()

MIN_LENGTH = 8
MAX_LENGTH = 128
MIN_GUESSES_LOG10 = 6  # zxcvbn score 2: "somewhat guessable", safe behind the sign-in throttles
_ESTIMATE_CHARS = 100  # zxcvbn's work grows with length; a longer password is strong past this anyway
# Common locally and missing from the (English-centred) breach list, or this product's own name.
LOCAL_COMMON = frozenset(
    """woaini1314 5201314520 woaini520 qq123456 aa123456 a123456789 abc123456 5201314 1314520
    iloveyou1314 woaiwojia billpost billpost1 billpost123 dianfei123 dianfei888""".split()
)

# The reasons (English msgids; `describe` translates them).
BREACHED = "appears in lists of common or breached passwords"
TOO_SHORT = f"at least {MIN_LENGTH} characters"
TOO_LONG = f"at most {MAX_LENGTH} characters"
KEYBOARD = "too easy to guess: a keyboard pattern"
REPEAT = "too easy to guess: repeated characters or a sequence"
DATE = "too easy to guess: a date"
WORD = "too easy to guess: a common word or name"
GUESSABLE = "too easy to guess"


def _weakest_reason(sequence: list[dict]) -> str:
    patterns = {match.get("pattern") for match in sequence}
    if "spatial" in patterns:
        return KEYBOARD
    if patterns & {"repeat", "sequence"}:
        return REPEAT
    if "date" in patterns:
        return DATE
    if "dictionary" in patterns:
        return WORD
    return GUESSABLE


def password_problem(password: str, user_inputs: list[str] | None = None) -> str | None:
    """None when acceptable, else the reason (an English msgid; `describe` gives the user's language).
    `user_inputs`: words of this user (name, account number) that make a password guessable."""
    if len(password) < MIN_LENGTH:
        return TOO_SHORT
    if len(password) > MAX_LENGTH:
        return TOO_LONG
    if password.lower() in LOCAL_COMMON:
        return BREACHED
    estimate = zxcvbn(password[:_ESTIMATE_CHARS], user_inputs=[u for u in (user_inputs or []) if u])
    sequence = estimate["sequence"]
    if len(sequence) == 1 and sequence[0].get("dictionary_name") == "passwords":
        return BREACHED  # the whole password is on the list (possibly l33t-spelt or reversed)
    if estimate["guesses_log10"] < MIN_GUESSES_LOG10:
        if any(m.get("dictionary_name") == "passwords" for m in sequence):
            return BREACHED
        return _weakest_reason(sequence)
    return None


def describe(problem: str) -> str:
    """The reason in the user's language (needs an app context for the translation)."""
    from flask_babel import gettext as _

    texts = {
        BREACHED: _("This password appears in lists of common or breached passwords; choose another."),
        TOO_SHORT: _("The password needs at least 8 characters."),
        TOO_LONG: _("The password may have at most 128 characters."),
        KEYBOARD: _("This password is too easy to guess: it is a keyboard pattern."),
        REPEAT: _("This password is too easy to guess: it repeats characters or follows a sequence."),
        DATE: _("This password is too easy to guess: it is mostly a date."),
        WORD: _("This password is too easy to guess: it is mostly a common word or name."),
        GUESSABLE: _("This password is too easy to guess; choose a longer one."),
    }
    return texts.get(problem, problem)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Spent on unknown users too, so response time does not tell whether a user exists.
DUMMY_HASH = hash_password("not-a-real-password-0")
