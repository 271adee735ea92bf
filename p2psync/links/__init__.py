"""Share links: read-only HTTPS URLs for one file or folder, for people who run nothing.

- ``store``: the links and their download log (SQLite, 0600, in the node's home);
- ``tokens``: link tokens, password hashes (scrypt), the wrong-password rate limiter;
- ``tls``: the listener's certificate (self-signed by default, replaceable);
- ``paths``: resolving a URL path inside the shared folder without ever leaving it;
- ``zipstream``: a folder as a zip, streamed without temp files;
- ``server``: HTTP/1.1 over TLS (h11 + trio), with streamed bodies;
- ``app``: what a link answers; ``service``: ``serve_links`` and the ``LinkManager``.

The security model is in docs/links.md.
"""
