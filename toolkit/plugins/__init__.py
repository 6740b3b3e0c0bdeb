"""Named diagnostics and fixes (and, later, ticket backends) that plug into toolkit."""
