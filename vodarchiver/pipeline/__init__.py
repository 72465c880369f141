"""The pipeline: pure decisions (backoff, retention, liveness) and the workers acting on them."""
