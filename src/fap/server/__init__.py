"""The fap server role: the HTTP API, its state store, blob store and job queue.

Other roles never import this package; the CLI imports it inside ``fap serve``.
"""

from fap.server.app import create_app, services_of
from fap.server.runner import serve
from fap.server.services import Services

__all__ = ("Services", "create_app", "serve", "services_of")
