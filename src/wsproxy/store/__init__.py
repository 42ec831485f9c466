"""The recording on disk: DuckDB schema and migrations, opening files, Arrow batches in, the read
side and read-only SQL out."""
