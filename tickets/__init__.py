"""The domain: intake, triage, routing, SLA, alerts, surges, gazetteer, contacts."""
