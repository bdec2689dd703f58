"""Adapters that let other frameworks keep their events in kes.

``kes.integrations.eventsourcing``: a persistence module for the ``eventsourcing`` library
(``pip install 'kes[eventsourcing]'``).
"""
