"""Web servers: one app factory with the security middleware (`app`, `security`), the zones console."""
