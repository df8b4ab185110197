"""Pillar 2, batch jobs: the job model, the job engine, the target registry and the backends."""
