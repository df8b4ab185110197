"""The local backend (:mod:`.backend`): the queue (:mod:`.scheduler`), the launcher
(:mod:`.launcher`), the agent and the "job" sandbox profile."""
