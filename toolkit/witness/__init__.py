"""Witnessed time: RFC 3161 time stamps and relay countersignatures of checkpoints."""
