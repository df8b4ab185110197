"""The local backend: the scheduler, the agent and the "job" sandbox profile."""
