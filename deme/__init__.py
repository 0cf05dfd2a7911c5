"""The composition root: the one package that may import every other (web app, CLI, runner)."""
