"""The plan wing (see docs/architecture.md)."""
