"""The fault-injection suite (`make chaos`, `make chaos-quick`): real faults against the real local
environment, counted, and written to RELIABILITY.md. Not part of `make test`."""
