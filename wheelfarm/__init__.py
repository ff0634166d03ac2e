"""wheelfarm: a build farm for binary Python wheels."""

__version__ = "0.1.0"
