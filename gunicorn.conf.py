# gunicorn reads ./gunicorn.conf.py by default; the configuration lives in the package.
from service.gunicorn_conf import *  # noqa: F403
