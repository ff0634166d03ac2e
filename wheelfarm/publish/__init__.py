"""The publish wing (see docs/architecture.md)."""
