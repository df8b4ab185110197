"""Isolation shared by the sandboxes: cgroups v1/v2, ids, procfs and resource limits."""
