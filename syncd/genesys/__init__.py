"""The I/O shell to Genesys Cloud: regions, auth, rate limiter, transport and API calls."""
