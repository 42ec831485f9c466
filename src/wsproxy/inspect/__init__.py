"""Working with a recording after the fact: check, timeline, diagram, and the JSONL, HAR and
Parquet formats in and out."""
