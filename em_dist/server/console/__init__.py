"""The experiment console: a static single-page app served by the tracking server, and a local console.

:func:`em_dist.server.console.mount.mount_console` adds it to a server app;
:mod:`em_dist.server.console.local` serves it over the run folders of a working directory.
"""
