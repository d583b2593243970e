"""Observability: metrics, JSON logs and systemd notification; used by all layers, uses none."""
