"""How the technician reaches an agent: directly, or (later) through a relay."""
