"""The customer's side: the SSH server that runs consent, enforces policy and serves a session."""
