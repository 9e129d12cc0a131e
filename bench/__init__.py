"""`make bench`: Provisor's performance harness (see docs/performance.md)."""
