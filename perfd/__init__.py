"""perfd: performance-regression system for C code."""
__version__ = "0.1.0"
