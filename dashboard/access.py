"""Team mode and public mode: who the visitor is, what they may see and do, and the admin login.

``INTRINSIC_LAB_MODE=public`` makes the dashboard safe to host: each visitor sees only their own uploads and
results (and the examples an admin published), per-visitor limits apply, public uploads expire, and the Jobs and
Benchmarks pages, retry/cancel/delete and publishing need the admin login. The default, ``team``, is a lab
shared by a team that trusts each other: everyone sees everything.

Plain Python (no Streamlit), so the limits and the login are tested without a browser.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from engine.envvars import positive_number
from engine.errors import IntrinsicLabError

MODE_ENV = "INTRINSIC_LAB_MODE"
ADMIN_SECRET_ENV = "INTRINSIC_LAB_ADMIN_SECRET"
VISITOR_PARAM = "visitor"  # the query parameter that carries a public visitor's token
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class LimitError(IntrinsicLabError):
    """A public visitor asked for more than their share; the message says which limit and its numbers."""


@dataclass(frozen=True)
class Limits:
    """Per-visitor limits of public mode (each from its environment variable)."""

    jobs_per_hour: int = 30
    concurrent_jobs: int = 2
    megapixels: float = 4.0
    frames: int = 12
    upload_mb: float = 20.0
    retention_hours: float = 24.0
    admin_session_minutes: float = 60.0

    @classmethod
    def from_env(cls) -> "Limits":
        return cls(
            jobs_per_hour=int(positive_number("INTRINSIC_LAB_PUBLIC_JOBS_PER_HOUR", cls.jobs_per_hour)),
            concurrent_jobs=int(positive_number("INTRINSIC_LAB_PUBLIC_CONCURRENT_JOBS", cls.concurrent_jobs)),
            megapixels=positive_number("INTRINSIC_LAB_PUBLIC_MEGAPIXELS", cls.megapixels),
            frames=int(positive_number("INTRINSIC_LAB_PUBLIC_FRAMES", cls.frames)),
            upload_mb=positive_number("INTRINSIC_LAB_PUBLIC_UPLOAD_MB", cls.upload_mb),
            retention_hours=positive_number("INTRINSIC_LAB_PUBLIC_RETENTION_HOURS", cls.retention_hours),
            admin_session_minutes=positive_number("INTRINSIC_LAB_ADMIN_SESSION_MINUTES", cls.admin_session_minutes),
        )

    @property
    def retention(self) -> timedelta:
        return timedelta(hours=self.retention_hours)


def public_mode() -> bool:
    mode = os.environ.get(MODE_ENV, "team").strip().lower()
    if mode not in ("team", "public"):
        raise ValueError(f"{MODE_ENV} must be 'team' or 'public', not {mode!r}")
    return mode == "public"


def new_visitor_token() -> str:
    return secrets.token_urlsafe(18)


def valid_token(token: str | None) -> bool:
    return bool(token) and bool(_TOKEN.match(token))


def check_upload(limits: Limits, *, total_bytes: int, frames: int, width: int, height: int) -> None:
    """Refuse an upload over the public limits, with the numbers."""
    if total_bytes > limits.upload_mb * 1e6:
        raise LimitError(f"the upload is {total_bytes / 1e6:.1f} MB; this public demo accepts up to "
                         f"{limits.upload_mb:g} MB")
    if frames > limits.frames:
        raise LimitError(f"the upload has {frames} frames; this public demo accepts up to {limits.frames}")
    megapixels = width * height / 1e6
    if megapixels > limits.megapixels:
        raise LimitError(f"the image is {width}×{height} ({megapixels:.1f} MP); this public demo accepts up to "
                         f"{limits.megapixels:g} MP — downscale it first")


def check_jobs(limits: Limits, *, new_jobs: int, recent: int, active: int) -> None:
    """Refuse ``new_jobs`` more jobs when the hourly or concurrent limit would be passed."""
    if new_jobs <= 0:
        return
    if recent + new_jobs > limits.jobs_per_hour:
        raise LimitError(f"you have run {recent} job(s) in the last hour; this public demo allows "
                         f"{limits.jobs_per_hour} per hour — try again later")
    if active + new_jobs > limits.concurrent_jobs:
        raise LimitError(f"you have {active} job(s) waiting or running and asked for {new_jobs} more; this public "
                         f"demo runs at most {limits.concurrent_jobs} at a time per visitor — wait for them to "
                         f"finish")


def admin_secret() -> str | None:
    secret = os.environ.get(ADMIN_SECRET_ENV, "")
    return secret or None


def admin_login(given: str, *, now: float | None = None, limits: Limits | None = None) -> float | None:
    """The expiry (epoch seconds) of a new admin session if ``given`` is the secret, else None. The comparison
    takes the same time whatever the input (``hmac.compare_digest``); with no secret configured nobody is admin."""
    secret = admin_secret()
    if secret is None or not given:
        return None
    if not hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8")):
        return None
    minutes = (limits or Limits.from_env()).admin_session_minutes
    return (now if now is not None else time.time()) + minutes * 60


def is_admin(until: float | None, *, now: float | None = None) -> bool:
    """Whether an admin session that expires at ``until`` is still valid. In team mode everyone is admin."""
    if not public_mode():
        return True
    return until is not None and (now if now is not None else time.time()) < until
