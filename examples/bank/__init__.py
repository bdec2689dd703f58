"""Bank accounts and transfers driven by a process manager."""
