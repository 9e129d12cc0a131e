"""Runnable examples of reacting to provisioning events (see docs/events.md)."""
