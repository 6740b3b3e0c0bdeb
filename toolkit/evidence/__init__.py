"""The customer's agent's evidence: a signed receipt at consent and a signed digest of
the operations it saw, checked against the technician's copy (docs/transcript-format.md)."""
