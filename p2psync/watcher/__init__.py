"""Filesystem watchers: changed names in a folder, debounced into rescan batches.

- ``inotify_loop``: the daemon's watcher on Linux (inotify read on the trio loop).
- ``child_process`` + ``child_main``: watchdog in a child process, elsewhere.
- ``in_process``: watchdog threads in the daemon (tests, platforms without a child).
- ``delivery``, ``aggregate``, ``event_names``: what every watcher shares (bridge items
  into debounced batches; which names an event touches).

Kept empty of imports: the child process imports ``child_main`` and nothing heavier.
"""
