"""The farm wing (see docs/architecture.md)."""
