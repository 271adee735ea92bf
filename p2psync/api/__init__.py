"""The local control API: a JSON HTTP API served by the daemon on loopback.

Server side: ``app.build_app(node)`` (routes and handlers), ``server.serve_api`` (on
``http.serve``, our small HTTP/1.1 server: h11 on trio). Client side: ``client.ApiClient``
(what the CLI uses). ``edits`` holds the config edits shared by both, so the daemon and an
offline CLI change a config the same way.
"""
