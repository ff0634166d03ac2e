"""The build wing (see docs/architecture.md)."""
