"""backprop-service: a NumPy backpropagation digit classifier behind a REST API.

gunicorn runs ``service:create_app()``; the import of Flask is deferred so that the engine and
the command line do not pay for it.
"""

from importlib import metadata

try:
    __version__ = metadata.version("backprop-service")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


def create_app(settings=None):
    from service.app import create_app as _create_app

    return _create_app(settings)
