"""The HTTP API: thin routes over the domain services (``strongroom serve``)."""
