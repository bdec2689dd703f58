"""The User aggregate: commands check the rules, event methods change state.

Events on the wire: ``UserCreated`` {userId, username, email}, ``EmailChanged``
{email}, ``UserRenamed`` {username}, ``UserDeactivated`` {reason}.
"""

from __future__ import annotations

from kes import Aggregate, DomainError, event


class UserDeactivatedError(DomainError):
    """A command was sent to a deactivated user."""


class User(Aggregate, id_field="user_id"):
    """A registered user, identified by ``user_id``."""

    @event("UserCreated")
    def __init__(self, user_id: str, username: str, email: str) -> None:
        self.username = username
        self.email = email
        self.active = True

    def change_email(self, email: str) -> None:
        """Change the email address of an active user."""
        self._require_active("change the email of")
        if email != self.email:
            self._email_changed(email)

    def rename(self, username: str) -> None:
        """Change the username of an active user."""
        self._require_active("rename")
        if username != self.username:
            self._renamed(username)

    def deactivate(self, reason: str = "") -> None:
        """Deactivate the user; later commands are refused. Idempotent."""
        if self.active:
            self._deactivated(reason)

    def _require_active(self, action: str) -> None:
        if not self.active:
            raise UserDeactivatedError(
                f"cannot {action} user {self.id!r}: the user is deactivated."
            )

    @event("EmailChanged")
    def _email_changed(self, email: str) -> None:
        self.email = email

    @event("UserRenamed")
    def _renamed(self, username: str) -> None:
        self.username = username

    @event("UserDeactivated")
    def _deactivated(self, reason: str) -> None:
        self.active = False
