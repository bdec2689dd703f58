"""Read model of the users example: a user directory, looked up by email.

Run it:  kes project run examples.users.read_models:UserDirectory
"""

from __future__ import annotations

from examples.users.domain import User
from kes.projections import ProjectionEvent, SqlProjection, Tx


class UserDirectory(SqlProjection):
    """Every user by id, with a unique index on email; exactly once into SQL."""

    name = "examples.users.directory"
    aggregates = (User,)  # its events, upcast to the current schema versions
    database = "sqlite:///.kes/users.db"

    def setup(self, tx: Tx) -> None:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS user_directory (user_id TEXT PRIMARY KEY, "
            "username TEXT NOT NULL, email TEXT NOT NULL, active BOOLEAN NOT NULL)"
        )
        tx.execute("CREATE INDEX IF NOT EXISTS user_directory_email ON user_directory (email)")

    def reset(self, tx: Tx) -> None:
        tx.execute("DELETE FROM user_directory")

    def on_UserCreated(self, event: ProjectionEvent, tx: Tx) -> None:
        p = event.payload
        tx.execute(
            "INSERT INTO user_directory (user_id, username, email, active) VALUES (?, ?, ?, TRUE)",
            (event.aggregate_id, p["username"], p["email"]),
        )

    def on_EmailChanged(self, event: ProjectionEvent, tx: Tx) -> None:
        tx.execute(
            "UPDATE user_directory SET email = ? WHERE user_id = ?",
            (event.payload["email"], event.aggregate_id),
        )

    def on_UserRenamed(self, event: ProjectionEvent, tx: Tx) -> None:
        tx.execute(
            "UPDATE user_directory SET username = ? WHERE user_id = ?",
            (event.payload["username"], event.aggregate_id),
        )

    def on_UserDeactivated(self, event: ProjectionEvent, tx: Tx) -> None:
        tx.execute(
            "UPDATE user_directory SET active = FALSE WHERE user_id = ?", (event.aggregate_id,)
        )


def find_by_email(tx: Tx, email: str) -> list[tuple[str, str, bool]]:
    """(user id, username, active) of the users with this email."""
    return [
        (str(u), str(n), bool(a))
        for u, n, a in tx.query(
            "SELECT user_id, username, active FROM user_directory WHERE email = ?", (email,)
        )
    ]
