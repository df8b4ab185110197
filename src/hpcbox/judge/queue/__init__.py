"""The judge's queue: in-process or Celery, its configuration, runner and callbacks."""
