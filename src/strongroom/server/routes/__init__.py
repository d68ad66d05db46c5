"""API routes, one module per domain. Each route names its action (see ``security.acts``)."""
