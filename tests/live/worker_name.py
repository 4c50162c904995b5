"""Airflow `hostname_callable` for two Celery workers on one host in the live tier.

Task instances record the host that ran them; two workers on one machine would both
report its name, so each worker reports the name it is given in PETAL_WORKER_NAME
(also its `--celery-hostname`). On separate hosts the default (the FQDN) does this.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("PETAL_WORKER_NAME") or socket.getfqdn()
