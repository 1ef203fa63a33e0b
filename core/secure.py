"""The one rule for every client that sends a secret: https, or plain http to this machine (loopback) only.

Every client that carries a key or token calls `check_secret_url` with the address it is about to use before
it sends anything: each label provider's key to its base_url (core.label.providers.base), RUNPOD_API_KEY to
runpod.api_base (core.pods.api) and to runpod.serverless_base (core.serve.endpoint), and a run's token to its
pod's agent (core.pods.channel). A key over plain http to another host could be read by anyone on the way.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bizsent.core.errors import BizsentError


def loopback(host: str) -> bool:
    host = host.lower().strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def check_secret_url(url: str, secret: str, setting: str) -> str:
    """`url` if `secret` may travel to it; else one line naming the setting to fix (BizsentError)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise BizsentError(f"{setting} {url!r} is not an http(s) address; fix it in config.toml")
    if parts.scheme != "https" and not loopback(host):
        raise BizsentError(f"refusing to send {secret} over plain http to {host}; use an https {setting} (plain"
                           " http only to this machine)")
    return url
