"""Storage: engines, models, tables, queries, claims, the writer; no HTTP."""
