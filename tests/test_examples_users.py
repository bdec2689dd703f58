"""The users example: lifecycle, rules, and what lands in the store."""

from __future__ import annotations

import pytest
from examples.users.domain import User, UserDeactivatedError

from kes.application import Application
from kes.domain import DomainError
from kes.errors import KesError
from kes.store import MemoryEventStore


@pytest.fixture
def app() -> Application:
    return Application(MemoryEventStore())


def test_user_lifecycle_is_stored_as_named_events(app: Application) -> None:
    user = User("u1", "jdoe", "jdoe@example.com")
    user.change_email("john@example.com")
    user.rename("john")
    user.deactivate("requested")
    app.save(user)
    events = app.store.read_stream("User", "u1")
    assert [e.event_type for e in events] == [
        "UserCreated",
        "EmailChanged",
        "UserRenamed",
        "UserDeactivated",
    ]
    assert [e.payload for e in events[1:]] == [
        {"email": "john@example.com"},
        {"username": "john"},
        {"reason": "requested"},
    ]
    loaded = app.get(User, "u1")
    assert (loaded.username, loaded.email, loaded.active) == ("john", "john@example.com", False)


def test_user_created_schema_has_the_article_field_names() -> None:
    import msgspec

    schema = msgspec.json.schema(User.event_types()["UserCreated"])
    assert schema["$defs"]["UserCreated"]["required"] == ["userId", "username", "email"]


def test_every_command_on_a_deactivated_user_is_refused_with_a_typed_error(
    app: Application,
) -> None:
    user = User("u1", "jdoe", "jdoe@example.com")
    user.deactivate()
    app.save(user)
    for command in (lambda u: u.change_email("x@y"), lambda u: u.rename("x")):
        with pytest.raises(UserDeactivatedError, match=r"'u1'.*deactivated"):
            app.update(User, "u1", command)
    assert app.store.stream_version("User", "u1") == 2
    assert issubclass(UserDeactivatedError, DomainError)
    assert issubclass(UserDeactivatedError, KesError)


def test_unchanged_values_and_repeated_deactivation_record_nothing(app: Application) -> None:
    user = User("u1", "jdoe", "jdoe@example.com")
    user.change_email("jdoe@example.com")
    user.rename("jdoe")
    user.deactivate()
    user.deactivate()
    assert user.version == 2
