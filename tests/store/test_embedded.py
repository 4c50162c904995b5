"""The embedded server path fails with one clear line when it cannot start."""

import pytest

from petal_labeller.store.connection import DatabaseUnavailable, embedded_url


def test_embedded_server_in_an_unwritable_place_is_one_clear_error(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data folder should be")
    with pytest.raises(DatabaseUnavailable, match="cannot start embedded PostgreSQL"):
        embedded_url(blocker / "pgdata")
