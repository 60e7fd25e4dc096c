"""Serving the portal with gunicorn: the configuration every deployment loads
(``gunicorn_conf``), the worker it runs (``worker``) and the pace a client must keep
(``pace``). Nothing in the application imports this package."""
