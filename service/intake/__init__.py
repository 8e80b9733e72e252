"""Events in: payloads, ingest, new treatments in batches, corrections."""
