"""Per-kind strategies: importing this package registers every kind's
defaulting and validation with `kbox.api.strategy`."""
