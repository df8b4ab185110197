"""Pillar 1, clusters: spec, rendering, node images, bring-up and the cluster store."""
