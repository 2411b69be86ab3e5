"""The store: jobs, inputs, outputs and metrics (SQLAlchemy 2.x) plus content-addressed artifact files.

SQLite (a file under ``$INTRINSIC_LAB_DATA``) by default; PostgreSQL when ``DATABASE_URL`` says so.
``db`` never imports torch or the engine: the worker (``engine.worker``) is where the two meet.

Modules: ``models`` (tables), ``session`` (engine, sessions, migrations), ``store`` (plain functions that take a
session and never commit), ``artifacts`` (files by sha256, in a folder or an S3 bucket).
"""
