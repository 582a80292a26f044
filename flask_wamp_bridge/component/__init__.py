"""The app as a full WAMP component: argument checks, hooks, background tasks, scheduled jobs, component mode.

The extension wires these in; each module has one job (:mod:`.validation`,
:mod:`.middleware`, :mod:`.tasks`, :mod:`.schedule`, :mod:`.run`). The last
three import gevent and are imported only when used.
"""
