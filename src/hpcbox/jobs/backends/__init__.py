"""hpcbox's own job backends, each a :class:`~hpcbox.jobs.backend.Backend` registered
under the ``hpcbox.backends`` entry point: local (queue, launcher, the "job" sandbox)
and SLURM over SSH. The engine imports none of them; it finds them through
:mod:`hpcbox.jobs.registry`."""
