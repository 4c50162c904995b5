"""Adds the PeTaL page to the Airflow UI (nav entry "PeTaL") and its JSON under /petal.

Registered through the `airflow.plugins` entry point (pyproject.toml), so installing
`petal-labeller[airflow]` is enough: no file in the plugins folder. Keep it that way,
since a copy there too would register the name twice (Airflow skips the second and
reports it as a plugin import error). The page itself lives in
`petal_labeller.airflow.ui`; it declares its own authentication, because Airflow
mounts plugin apps without the API server's.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from petal_labeller.airflow.labelling.timetable import CatchupFromTimetable
from petal_labeller.airflow.ui.app import create_app

URL_PREFIX = "/petal"


class PetalPlugin(AirflowPlugin):
    name = "petal"
    # Custom timetables must be registered by a plugin to be (de)serialized.
    timetables: ClassVar[list[type]] = [CatchupFromTimetable]
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "PeTaL labeller"}
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "PeTaL",
            "href": "petal/",
            "destination": "nav",
            "url_route": "petal",
            "category": "browse",
        }
    ]
