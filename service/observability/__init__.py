"""Observability: logs, masking, metrics."""
