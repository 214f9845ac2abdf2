"""Fetching a Label Studio task's image: its own ``/data/...`` files, or absolute URLs of allowed hosts.

Label Studio hands tasks over with image *URLs*: files it stores are relative (``/data/upload/...``) and
are read from ``LABEL_STUDIO_URL`` with ``Authorization: Token LABEL_STUDIO_API_KEY``. Absolute URLs are
fetched only from Label Studio's own host or hosts listed in the settings (the token is sent to Label
Studio's host only), so a task cannot make the backend call arbitrary addresses.
"""
from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field

from ..errors import UserError
from .images import MAX_IMAGE_BYTES


@dataclass(frozen=True)
class LabelStudioSettings:
    url: str = ""  # LABEL_STUDIO_URL, e.g. http://localhost:8080
    api_key: str = ""  # LABEL_STUDIO_API_KEY (a legacy token)
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)  # "*" allows every host
    timeout_s: float = 30.0
    max_image_bytes: int = MAX_IMAGE_BYTES

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> LabelStudioSettings:
        """LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY and FOCALCLICK_EDGE_LS_ALLOWED_HOSTS (comma-separated
        host or host:port; "*" for any)."""
        env = os.environ if env is None else env
        hosts = frozenset(h.strip().lower() for h in env.get("FOCALCLICK_EDGE_LS_ALLOWED_HOSTS", "").split(",")
                          if h.strip())
        return cls(url=env.get("LABEL_STUDIO_URL", "").rstrip("/"), api_key=env.get("LABEL_STUDIO_API_KEY", ""),
                   allowed_hosts=hosts)


def _netloc(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{(parts.hostname or '').lower()}:{port}"


def resolve_image_url(url: object, settings: LabelStudioSettings) -> tuple[str, dict[str, str]]:
    """(absolute URL, headers) for a task's image reference, or a UserError saying why it is refused."""
    if not isinstance(url, str) or not url:
        raise UserError("the task has no image URL under the key the label_config's <Image value> names")
    if url.startswith("/"):
        if not url.startswith("/data/"):
            raise UserError(f"image path {url[:80]} is not a Label Studio /data/... path")
        if not settings.url:
            raise UserError(f"image {url[:80]} is stored in Label Studio: set LABEL_STUDIO_URL (and "
                            "LABEL_STUDIO_API_KEY) so the backend can read it")
        url = settings.url + url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"image URL {url[:80]} is not http(s); use Label Studio's storage or an http(s) URL")
    own = bool(settings.url) and _netloc(url) == _netloc(settings.url)
    host = parts.hostname.lower()
    hostport = f"{host}:{parts.port}" if parts.port else host
    if not (own or "*" in settings.allowed_hosts or host in settings.allowed_hosts
            or hostport in settings.allowed_hosts):
        raise UserError(f"image host {hostport} is not Label Studio's; allow it with "
                        "FOCALCLICK_EDGE_LS_ALLOWED_HOSTS if the backend should fetch from it")
    headers = {"Authorization": f"Token {settings.api_key}"} if own and settings.api_key else {}
    return url, headers


def fetch_image_bytes(url: str, headers: dict[str, str], settings: LabelStudioSettings) -> bytes:
    """GET the image without following redirects (they could leave the allowed hosts), size-capped."""
    import httpx

    try:
        with httpx.Client(timeout=settings.timeout_s, follow_redirects=False) as client, \
                client.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                raise UserError(f"fetching the task image {url[:80]} answered HTTP {response.status_code}"
                                + ("; check LABEL_STUDIO_API_KEY" if response.status_code in (401, 403) else ""))
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > settings.max_image_bytes:
                    raise UserError(f"task image {url[:80]} is over {settings.max_image_bytes >> 20} MB")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise UserError(f"cannot fetch the task image {url[:80]}: {exc}") from None
