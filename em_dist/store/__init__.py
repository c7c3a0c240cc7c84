"""The local run folder: layout, the background writer and the read-back API (see docs/format.md)."""
