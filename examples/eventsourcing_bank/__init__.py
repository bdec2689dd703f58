"""Bank accounts written for the ``eventsourcing`` library alone (the example application
of the library's documentation, in our own words). Nothing here knows about kes: the
application moves to Kafka by its environment only (see demo.py)."""
