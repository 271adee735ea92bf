"""Who changed what, when: a durable per-folder change log (issue 24.2)."""
