"""aftercare: follow-up after outpatient procedures."""

__version__ = "0.1.0"
