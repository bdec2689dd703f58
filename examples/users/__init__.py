"""Users: registration, email changes, deactivation."""
