"""Secrets resolve as flytekit's connector service resolves them, and a miss never shows a value."""

from __future__ import annotations

import pytest

from core_connectors import SecretNotFound, get_agent_secret, get_connector_secret
from core_connectors.secrets import scrub


@pytest.fixture(autouse=True)
def secrets_dir(tmp_path, monkeypatch):
    for name in ("FLYTE_SECRETS_ENV_PREFIX", "FLYTE_SECRETS_FILE_PREFIX", "_FSEC_API_KEY", "_FSEC_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLYTE_SECRETS_DEFAULT_DIR", str(tmp_path))
    return tmp_path


def test_environment_first_and_stripped(secrets_dir, monkeypatch):
    (secrets_dir / "api_key").write_text("from-file")
    monkeypatch.setenv("_FSEC_API_KEY", "  from-env\n")
    assert get_connector_secret("api_key") == "from-env"


def test_custom_env_prefix(monkeypatch):
    monkeypatch.setenv("FLYTE_SECRETS_ENV_PREFIX", "MY_")
    monkeypatch.setenv("MY_TOKEN", "t")
    assert get_agent_secret("token") == "t"


def test_file_with_prefix_and_lower_cased_key(secrets_dir, monkeypatch):
    monkeypatch.setenv("FLYTE_SECRETS_FILE_PREFIX", "pre-")
    (secrets_dir / "pre-google_application_credentials").write_text('{"type": "service_account"}\n')
    assert get_connector_secret("GOOGLE_APPLICATION_CREDENTIALS") == '{"type": "service_account"}'


def test_missing_secret_names_where_it_looked(secrets_dir):
    with pytest.raises(SecretNotFound) as info:
        get_connector_secret("api_key")
    assert "_FSEC_API_KEY" in str(info.value) and str(secrets_dir / "api_key") in str(info.value)
    assert isinstance(info.value, KeyError)


@pytest.mark.parametrize(
    "name", ["/proc/self/environ", "../outside", "..", ".", "", "sub/key", "a\\b", "key\0", "/dev/zero"]
)
def test_a_name_that_is_a_path_reads_no_file(secrets_dir, name):
    """A connector may take the name from a task template (the webhook's {secrets.NAME}): only files in the
    secrets directory are secrets."""
    (secrets_dir.parent / "outside").write_text("not a secret of the service")
    (secrets_dir / "sub").mkdir()
    (secrets_dir / "sub" / "key").write_text("nested")
    with pytest.raises(SecretNotFound) as info:
        get_connector_secret(name)
    assert "is not a secret name" in str(info.value)


def test_a_secret_file_is_read_up_to_a_limit(secrets_dir):
    (secrets_dir / "huge").write_text("x" * (2 << 20))
    with pytest.raises(SecretNotFound, match="larger than 1 MiB"):
        get_connector_secret("huge")


def test_scrub_replaces_every_secret_handed_out_and_secret_looking_variables(secrets_dir, monkeypatch):
    (secrets_dir / "api_key").write_text("file-secret-value")
    monkeypatch.setenv("MY_SERVICE_PASSWORD", "env-password-value")
    get_connector_secret("api_key")
    text = "a file-secret-value, an env-password-value and a short one: abc"
    assert scrub(text) == "a [redacted], an [redacted] and a short one: abc"
