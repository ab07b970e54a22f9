"""The HTTP API of Alliance Ledger (FastAPI): merchant, operator and public routes."""
