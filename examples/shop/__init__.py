"""The shop: an order service on FastAPI and kes.aio (see app.py)."""
