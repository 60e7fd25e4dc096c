"""gunicorn entry point: ``gunicorn wsgi:app``. Configuration comes from PORTAL_* variables."""
from portal import create_app

app = create_app()
