"""The store: SQLAlchemy models, Alembic migrations, sessions and repositories."""
