"""The judge's store: the submission repository and its column codec."""
