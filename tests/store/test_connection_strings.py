"""Connection strings in every form libpq accepts: built, named and redacted by libpq's parser.

The embedded server's URL is a unix-socket URL (`postgresql://postgres:@/db?host=/dir`),
where hand-made URL surgery produced `port=None`; and passwords leaked in messages
for every form but `scheme://user:pw@host`.
"""

from __future__ import annotations

import string

import psycopg2.extensions
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from petal_labeller.store.connection import (
    SECRET_MASK,
    DatabaseUnavailable,
    connect,
    database_name,
    redact,
    with_options,
)

SOCKET_URL = "postgresql://postgres:@/petal?host=/tmp/petal-home/pgdata"


def test_a_password_added_to_a_unix_socket_url_keeps_the_socket():
    dsn = with_options(SOCKET_URL, password="s3cret")
    params = psycopg2.extensions.parse_dsn(dsn)
    assert params == {
        "user": "postgres",
        "password": "s3cret",
        "dbname": "petal",
        "host": "/tmp/petal-home/pgdata",
    }
    assert "None" not in dsn


def test_another_database_on_the_same_server_in_every_form():
    for server in (
        SOCKET_URL,
        "postgresql://postgres@127.0.0.1:5432/test",
        "host=127.0.0.1 port=5432 user=postgres dbname=test",
        "postgresql:///test?host=/var/run/postgresql",
    ):
        other = with_options(server, dbname="petal_test_1")
        assert database_name(other) == "petal_test_1"
        kept = psycopg2.extensions.parse_dsn(server)
        kept.pop("dbname")
        assert kept.items() <= psycopg2.extensions.parse_dsn(other).items()


def test_a_database_name_is_never_read_from_the_socket_path():
    assert database_name(SOCKET_URL) == "petal"


#: Passwords drawn from the characters people put in them, quoting characters included;
#: the prefix keeps a short draw from matching the rest of the string (`postgr`).
passwords = st.text(
    alphabet=string.ascii_letters + string.digits + "!#$%&()*+,-./:;<=>?@[]^_{|}~ '\"\\",
    max_size=30,
).map(lambda p: f"pw:{p}".strip())


def _forms(password: str) -> list[str]:
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    from urllib.parse import quote

    encoded = quote(password, safe="")
    return [
        f"postgresql://u:{encoded}@db.example:5432/petal",
        f"postgresql://u@db.example/petal?password={encoded}",
        f"postgresql://u:{encoded}@/petal?host=/run/postgresql",
        f"postgresql://u:{encoded}@[2001:db8::1]:5432/petal",
        f"postgres://u:{encoded}@h1:5432,h2:5433/petal?sslmode=require",
        f"host=db.example port=5432 user=u password='{quoted}' dbname=petal",
        f"postgresql://?dbname=petal&user=u&password={encoded}",
    ]


@given(passwords)
@example("hunter2")
@example("pa ss'wo\\rd")
def test_redaction_hides_the_password_in_every_form(password):
    for dsn in _forms(password):
        assert psycopg2.extensions.parse_dsn(dsn)["password"] == password, dsn
        shown = redact(dsn)
        assert password not in shown, dsn
        assert SECRET_MASK in shown
        params = psycopg2.extensions.parse_dsn(shown)
        assert params.pop("password") == SECRET_MASK
        original = psycopg2.extensions.parse_dsn(dsn)
        original.pop("password")
        assert params == original, "redaction must keep everything but the password"


@pytest.mark.parametrize(
    "broken",
    [
        "postgresql://u:hunter2@[::1/petal",  # bad IPv6 host
        "host=db password=hunter2 dbname",  # key=value missing '='
        "postgresql://u:hunter2@db/petal?nonsense=1",  # unknown parameter
        "host=db password='hunter2",  # unterminated quote
        "postgresql:/petal?password=hunter2",  # one slash: not a URI to libpq
    ],
)
def test_an_unparseable_string_is_refused_without_echoing_it(broken):
    assert "hunter2" not in redact(broken)
    with pytest.raises(DatabaseUnavailable) as raised:
        connect(broken)
    assert "hunter2" not in str(raised.value)
    assert "invalid PostgreSQL connection string" in str(raised.value)


def test_an_unreachable_server_is_named_with_its_password_hidden():
    with pytest.raises(DatabaseUnavailable) as raised:
        connect("host=127.0.0.1 port=1 user=u password=hunter2 dbname=none")
    message = str(raised.value)
    assert "hunter2" not in message and f"password={SECRET_MASK}" in message


# Issue 24 item 4: every secret key, not only `password` -----------------------------------
def _secret_forms(secret: str) -> list[tuple[str, set[str]]]:
    """(connection string, its secret keys) with `secret` as sslpassword, alone or with a
    password, in key=value and URL form, the key spelled plainly or percent-encoded."""
    from urllib.parse import quote

    quoted = secret.replace("\\", "\\\\").replace("'", "\\'")
    encoded = quote(secret, safe="")
    return [
        (f"host=db.example user=u sslpassword='{quoted}' dbname=petal", {"sslpassword"}),
        (f"host=db password='{quoted}x' sslpassword='{quoted}'", {"password", "sslpassword"}),
        (f"postgresql://u@db.example/petal?sslpassword={encoded}", {"sslpassword"}),
        (f"postgresql://u@db/petal?ssl%70assword={encoded}&sslmode=require", {"sslpassword"}),
        (f"postgresql://u:{encoded}x@db/petal?sslpassword={encoded}", {"password", "sslpassword"}),
        (f"postgresql:///petal?host=/run/pg&sslpassword={encoded}", {"sslpassword"}),
        (f"postgresql://?dbname=petal&sslpassword={encoded}&password={encoded}",
         {"password", "sslpassword"}),
    ]  # fmt: skip


@given(passwords)
@example("hunter2")
@example("pa ss'wo\\rd")
def test_redaction_hides_sslpassword_and_every_password_key_in_every_form(secret):
    from petal_labeller.store.runs import redact_error

    for dsn, keys in _secret_forms(secret):
        original = psycopg2.extensions.parse_dsn(dsn)
        assert {k for k in original if "password" in k} == keys, dsn
        shown = redact(dsn)
        assert secret not in shown, dsn
        params = psycopg2.extensions.parse_dsn(shown)
        assert all(params.pop(k) == SECRET_MASK for k in keys), shown
        assert params == {k: v for k, v in original.items() if k not in keys}, shown
        # The stored-error scrubber, which sees connection strings inside free text.
        assert secret not in redact_error(f"cannot connect to {dsn}: timeout"), dsn


@pytest.mark.parametrize(
    "dsn",
    [
        "host=127.0.0.1 port=1 user=u sslpassword=hunter2 dbname=none",
        "host=127.0.0.1 port=1 user=u sslpassword='hun ter2' password=hunter2 dbname=none",
        "postgresql://u@127.0.0.1:1/none?sslpassword=hunter2",
        "postgresql://u@127.0.0.1:1/none?ssl%70assword=hunter2",
    ],
)
def test_cannot_connect_never_prints_an_sslpassword(dsn):
    with pytest.raises(DatabaseUnavailable) as raised:
        connect(dsn)
    message = str(raised.value)
    assert "cannot connect" in message and SECRET_MASK in message
    assert "hunter2" not in message and "hun ter2" not in message


@pytest.mark.parametrize(
    "text",
    [
        "sslpassword='hun ter2 x'",
        'sslpassword="hun ter2 x"',
        '{"sslpassword": "hun ter2 x"}',
        "ssl%70assword=hunter2",
        "SSL%50ASSWORD=hunter2",
        "x_client_secret = hunter2",
    ],
)
def test_stored_errors_hide_quoted_and_percent_encoded_secrets(text):
    from petal_labeller.store.runs import redact_error

    shown = redact_error(f"error: {text} then more")
    assert "hunter2" not in shown and "ter2" not in shown and "***" in shown
    assert shown.endswith("then more")
