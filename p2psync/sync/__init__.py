"""The sync engine: index exchange, folder loops, the puller and the versioner."""
