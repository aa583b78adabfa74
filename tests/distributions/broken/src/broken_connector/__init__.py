"""Fails at import, as a plugin does whose vendor SDK is missing."""

import vendor_sdk_that_is_not_installed  # noqa: F401
