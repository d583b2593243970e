"""syncd: keeps Genesys Cloud outbound BYOC routing in step with schedules and carrier health."""

__version__ = "0.1.0"
