"""Platform plumbing shared by every package: settings, database, Celery, crypto, logging."""
