"""The USSD menu: a few key presses on a basic phone become a ticket or a registration.

``routes`` (the webhooks) → ``service`` (one hop: caller, state, engine, final write) →
``engine`` (the pure menu state machine; screens from ``catalogs/``) with ``store`` (Redis or
the database) and ``actions`` (the database work, through ``tickets.intake``).
"""
