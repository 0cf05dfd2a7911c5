"""The domain: every report becomes a ticket that reaches the right team, is escalated when it
waits too long, and whose sender hears back.

- ``intake``: the contract used by the API, USSD, calls and the bot (create/update tickets,
  households, open tickets, erase a contact);
- ``triage``: priority and sensitivity from category and words (``data/triage_keywords.json``);
- ``routing``: rules category × place × minimum priority → team, most specific wins; decisions;
  auto-assignment;
- ``sla``: due times (``data/sla_defaults.json`` or ``SlaTarget`` rows), pause while waiting,
  the breach check that escalates;
- ``alerts``: alert rows per team channel or person, delivery by SMS / email / signed webhook,
  retries; protection alerts carry only the reference;
- ``surges``: reports of one category at one cercle/site grouped into an incident;
- ``notifications``: status SMS to senders, satisfaction question, "status" replies;
- ``workflow``: changes after intake (status, priority, category, team, assignee, notes);
- ``erasure``: erasing a contact, retention purge;
- ``tasks``: the Celery tasks (ids in, idempotent); ``i18n`` + ``catalogs/``: the texts;
- ``gazetteer``, ``contacts``, ``references``: places, people, short references.
"""
