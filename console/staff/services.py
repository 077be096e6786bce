"""Staff users: creation, roles, sign-in checks, password and language changes."""

from __future__ import annotations

import secrets
import unicodedata

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from console.audit import Actor, record_audit
from console.models import ROLES, User, UserRole
from console.passwords import DUMMY_HASH, hash_password, password_problem, verify_password


class StaffError(ValueError):
    pass


def normalize_username(text: str | None) -> str:
    """The one normalisation of a staff user name, for creation, sign-in and the sign-in throttle
    alike: Unicode NFKC (full-width letters become plain), surrounding whitespace dropped. Whatever
    is typed, the throttle counts against the name it would sign in as."""
    return unicodedata.normalize("NFKC", text or "").strip()[:64]


def create_user(
    session: Session, username: str, password: str, roles: list[str], actor: Actor, display_name: str = ""
) -> User:
    username = normalize_username(username)
    if not username:
        raise StaffError("username: required")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise StaffError(f"role: must be among {', '.join(ROLES)} (got {', '.join(unknown) or 'none'})")
    problem = password_problem(password, user_inputs=[username, display_name])
    if problem:
        raise StaffError(f"password: {problem}")
    if session.scalar(select(User.id).where(User.username == username)):
        raise StaffError(f"username: {username} already exists")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        session_token=secrets.token_hex(16),
        role_rows=[UserRole(role=r) for r in sorted(set(roles))],
    )
    session.add(user)
    session.flush()
    record_audit(session, actor, "user.create", "user", user.id, after={"username": username, "roles": sorted(roles)})
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == normalize_username(username)))
    if user is None:
        verify_password(DUMMY_HASH, password)  # same cost either way
        return None
    if not user.active or not verify_password(user.password_hash, password):
        return None
    return user


def set_roles(session: Session, user: User, roles: list[str], actor: Actor) -> None:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise StaffError(f"role: unknown {', '.join(unknown)}")
    if not roles:
        raise StaffError("role: at least one")
    if actor.user_id == user.id and "admin" in user.roles and "admin" not in roles:
        raise StaffError("role: you cannot take the administrator role from yourself")
    before = sorted(user.roles)
    user.role_rows = [UserRole(role=r) for r in sorted(set(roles))]
    session.flush()
    record_audit(session, actor, "user.roles", "user", user.id, before={"roles": before}, after={"roles": sorted(roles)})


def _set_password(session: Session, user: User, new_password: str) -> None:
    """The password checked and set, with a new session token (every other session ends). Flushes."""
    problem = password_problem(new_password, user_inputs=[user.username, user.display_name])
    if problem:
        raise StaffError(f"password: {problem}")
    user.password_hash = hash_password(new_password)
    user.session_token = secrets.token_hex(16)
    session.flush()


def change_password(session: Session, user: User, new_password: str, actor: Actor) -> None:
    """The user's own change: sets the password and ends every other session of the user."""
    _set_password(session, user, new_password)
    record_audit(session, actor, "user.password", "user", user.id)


def may_deactivate(user: User, actor_user_id: int | None) -> bool:
    """An admin cannot deactivate their own account (nobody left to undo it): the users page offers
    the button for the others only, and set_active refuses it."""
    return user.id != actor_user_id


def claimed_work_items(session: Session, user: User) -> int:
    """Work items the user is working on now (they stay theirs until someone reassigns them)."""
    from console.models import WorkItem
    from console.models.delivery import WorkItemStatus

    return session.scalar(select(func.count(WorkItem.id)).where(WorkItem.claimed_by_id == user.id,
                                                                WorkItem.status == WorkItemStatus.CLAIMED)) or 0


def set_active(session: Session, user: User, active: bool, actor: Actor) -> None:
    """Deactivate (every session ends at once: a new token, and the loader refuses inactive users) or
    reactivate a user. Audited. An admin cannot deactivate their own account (may_deactivate)."""
    if not active and not may_deactivate(user, actor.user_id):
        raise StaffError("active: you cannot deactivate yourself")
    if user.active == active:
        return
    user.active = active
    user.session_token = secrets.token_hex(16)
    session.flush()
    record_audit(session, actor, "user.activate" if active else "user.deactivate", "user", user.id,
                 before={"active": not active}, after={"active": active})


def reset_password(session: Session, user: User, new_password: str, actor: Actor) -> None:
    """An admin sets a new password for a user (who forgot theirs); every session of the user ends."""
    _set_password(session, user, new_password)
    record_audit(session, actor, "user.password_reset", "user", user.id)


def set_language(session: Session, user: User, language: str) -> None:
    if language not in ("zh", "en"):
        raise StaffError("language: zh or en")
    user.language = language
    session.flush()


def end_sessions(session: Session, user: User) -> None:
    """A new session token: every session cookie issued before it stops working (sign-out)."""
    user.session_token = secrets.token_hex(16)
    session.flush()
