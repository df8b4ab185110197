"""The backends jobs run on: local (scheduler, agent, the "job" sandbox) and SLURM."""
