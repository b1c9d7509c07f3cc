"""backprop-service: a NumPy backpropagation digit classifier behind a REST API.

gunicorn runs ``service:create_app()``; the import of Flask is deferred so that the engine and
the command line do not pay for it.
"""


def create_app(settings=None):
    from service.app import create_app as _create_app

    return _create_app(settings)
