"""Anchor ingest: HTTP in, validation, durable de-duplication, publication to Kafka."""
