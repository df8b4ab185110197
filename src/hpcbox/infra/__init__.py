"""Adapters more than one pillar uses: database, transport, container runtimes, isolation."""
