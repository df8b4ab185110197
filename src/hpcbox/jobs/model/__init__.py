"""The job model: specs, states and their transitions, jobs, targets and queues; no I/O."""
