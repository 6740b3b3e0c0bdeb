"""toolkit: consent-gated, audited remote support sessions with signed transcripts."""

__version__ = "0.1.0"

__all__ = ["__version__"]
