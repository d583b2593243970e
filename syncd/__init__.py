"""syncd: keeps Genesys Cloud outbound BYOC trunk routing in step with WFM schedules and carrier health."""

__version__ = "0.1.0"
