"""The Python client for Strongroom's HTTP API (see :mod:`strongroom.client.api`)."""

from strongroom.client.api import Client, StrongroomError

__all__ = ["Client", "StrongroomError"]
