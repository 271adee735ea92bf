"""Sans-IO wire protocol and data model. Imports no trio, no sockets, no filesystem."""
