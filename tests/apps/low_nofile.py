"""gunicorn config (``-c python:tests.apps.low_nofile``): the master and its workers get ``TEST_NOFILE`` descriptors.

Soft and hard limit alike, so the worker cannot raise its soft limit itself: a deployment at its limit.
"""

import os
import resource

_limit = int(os.environ.get("TEST_NOFILE", "64"))
resource.setrlimit(resource.RLIMIT_NOFILE, (_limit, _limit))
