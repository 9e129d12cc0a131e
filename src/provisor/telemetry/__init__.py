"""Metrics (Prometheus, always available) and traces (OpenTelemetry, optional); docs/operations.md."""
