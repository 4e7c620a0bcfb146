"""plantwatch: watch production lines from sensor to dashboard."""

__version__ = "0.1.0"
