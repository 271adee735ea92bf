"""The local control API: a JSON HTTP API served by the daemon on loopback.

Server side: ``app.build_app(node)`` (the Starlette app), ``server.serve_api`` (hypercorn's
trio worker). Client side: ``client.ApiClient`` (what the CLI uses). ``edits`` holds the
config edits shared by both, so the daemon and an offline CLI change a config the same way.
"""
