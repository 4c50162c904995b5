"""Every route the PeTaL UI plugin serves, found by walking the mounted app, refuses an
anonymous request: routes added later, and the ones FastAPI adds by itself, included."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

PREFIX = "/petal"


@pytest.fixture(scope="module")
def client(airflow_db):
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app()) as test_client:
        yield test_client


def _plugin_paths(client) -> list[str]:
    from starlette.routing import Mount

    mounts = [r for r in client.app.routes if isinstance(r, Mount) and r.path == PREFIX]
    assert mounts, "the PeTaL plugin is not mounted"
    paths = {route.path for route in mounts[0].app.routes if hasattr(route, "path")}
    return sorted(PREFIX + path for path in paths)


def test_every_plugin_route_refuses_anonymous_requests(client):
    paths = _plugin_paths(client)
    assert f"{PREFIX}/api/summary" in paths
    open_paths = {}
    for path in paths:
        response = client.get(path.replace("{", "").replace("}", ""))
        if response.status_code not in (401, 403):
            open_paths[path] = response.status_code
    assert open_paths == {}, f"reachable without signing in: {open_paths}"
