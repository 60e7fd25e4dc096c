"""Typed configuration read from ``PORTAL_*`` environment variables and the instance folder.

Every setting is listed in README.md. There is deliberately no fallback secret: in
production the portal refuses to start without one (CONVENTIONS §1).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message says which setting and why."""


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in {"1", "true", "yes", "on"}:
        return True
    if v in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


@dataclass
class Settings:
    env: str = "production"  # production | development | test
    instance_path: Path = Path("instance")
    secret_key: str | None = None
    database_url: str | None = None
    keyring_path: Path | None = None
    audit_key_path: Path | None = None
    demo: bool = False
    base_url: str = "http://127.0.0.1:5000"  # every absolute link (mail); never the request's Host
    https: bool = False
    behind_proxy: bool = False
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    argon2_memory_kib: int = 19456
    argon2_iterations: int = 2
    argon2_lanes: int = 1
    # Sign-in throttling (portal.auth.throttle; README "Sign-in throttling").
    login_free_failures: int = 5  # per account and source before delays begin
    login_delay_seconds: int = 60  # the first delay; doubles with each further failure
    login_max_delay_minutes: int = 240  # the longest delay
    login_max_failures_account: int = 30  # per account within the account window: then known devices only
    login_account_window_hours: int = 24
    login_max_failures_address: int = 20  # per source address, across accounts, within the window
    login_window_minutes: int = 15
    login_known_device_days: int = 180  # how long a browser that signed in stays known
    max_form_bytes: int = 2 * 1024 * 1024
    invitation_days: int = 7
    blob_store: str = "directory"  # directory | database
    blob_dir: Path | None = None
    max_upload_bytes: int = 1024 * 1024 * 1024
    # Malware scanning (README "Malware scanning"): clamd's socket (a path, or tcp://host:port).
    # Unset: nothing is scanned, so every upload stays pending and no reader gets it.
    clamd_socket: str | None = None
    clamd_timeout_seconds: int = 60  # no answer for this long: the scan is left pending
    # The signature directory clamd loads, when the portal can see it: the signature age for
    # /healthz if clamd reports none (the project's own offline signatures carry no date).
    clamd_database_dir: Path | None = None
    # How long a wrap in flight holds off the retirement of its KEK if its transaction never
    # ends (portal.encryption.leases): far beyond the longest transfer (1 GiB at 10 Mbit/s ≈ 15 min).
    key_lease_hours: int = 24
    review_target_days: int = 20  # business days from submission; an operational target
    reminder_days: int = 2  # business days before a response is due
    rfi_default_days: int = 10  # a request for information is due this many business days ahead unless changed
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    mail_from: str = "no-reply@ttr-portal.invalid"
    totp_issuer: str = "TTR Portal"
    # Development only: the outbox (console and `portal mail list`) shows invitation links in full.
    # Refused with PORTAL_ENV=production; otherwise only the recipient's mail holds a live link.
    show_mail_links: bool = False
    # Logs and metrics (portal.observability; README "Logs and metrics").
    log_level: str = "INFO"  # DEBUG | INFO | WARNING | ERROR: the JSON log on stderr
    # A bearer token that opens /metrics to a scraper that is not on loopback (or to any
    # scraper behind a proxy, where loopback proves nothing). Unset: loopback only.
    metrics_token: str | None = None
    # The official notice's signature (portal.informs.signing; README "Signing the official
    # notice"). A PKCS#12 file with the ministry's signing key and certificate (its password in
    # PORTAL_NOTICE_SIGNING_PASSWORD), and the CA certificate companies verify against (served at
    # /notices/ca.pem). Unset: the demo set `portal init` creates under instance/, used only in
    # development, tests or with PORTAL_DEMO=1; otherwise approval refuses to issue unsigned.
    notice_signing_p12: Path | None = None
    notice_signing_password: str | None = None
    notice_ca_cert: Path | None = None
    notice_crl: Path | None = None  # the CA's revocation list, checked when a notice is verified
    # What the notice says about who issued it and how to challenge it (担当課・連絡先, 教示).
    notice_office_ja: str = "経済産業省 貿易経済安全保障局 安全保障貿易管理課"
    notice_office_en: str = ("Security Export Control Division, Trade and Economic Security Bureau, "
                             "Ministry of Economy, Trade and Industry")
    notice_contact_ja: str = "電話 03-3501-1511（代表）"
    notice_contact_en: str = "Tel. +81-3-3501-1511 (switchboard)"
    notice_appeal_ja: str = ""  # empty: the default 教示 (portal.informs.notice.APPEAL_DEFAULT)
    notice_appeal_en: str = ""
    # Sign-in with GビズID by OpenID Connect (portal.auth.oidc; README "Sign-in with GビズID"):
    # off unless the issuer, the client id and the client secret are all set.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scopes: str = "openid profile email"
    # The portal role a first sign-in of each GビズID account type gets; empty: refused.
    oidc_prime_role: str = "org_admin"
    oidc_member_role: str = "filer"
    oidc_entry_role: str = ""  # an Entry account is self-registered, its identity never proofed
    oidc_leeway_seconds: int = 60  # clock skew allowed on the ID token's times
    oidc_timeout_seconds: int = 10  # each call from the portal to the provider
    oidc_logout: bool = True  # sign-out also ends the provider's session, if it offers RP-initiated logout
    # The API's rate limit per token, per minute and per server process (portal.api.ratelimit).
    api_rate_per_minute: int = 600

    ENV_PREFIX = "PORTAL_"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for f in fields(cls):
            key = cls.ENV_PREFIX + f.name.upper()
            if key not in environ:
                continue
            raw = environ[key]
            try:
                values[f.name] = _convert(f.type, raw)
            except ValueError as exc:
                raise ConfigError(f"{key}: {exc}") from None
        values.update(overrides)
        settings = cls(**values)
        settings._resolve()
        return settings

    def _resolve(self) -> None:
        if self.env not in {"production", "development", "test"}:
            raise ConfigError(f"PORTAL_ENV must be production, development or test, not {self.env!r}")
        self.instance_path = Path(self.instance_path).resolve()
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.instance_path / 'portal.db'}"
        if self.keyring_path is None:
            self.keyring_path = self.instance_path / "keyring.json"
        if self.audit_key_path is None:
            self.audit_key_path = self.instance_path / "audit-signing.pem"
        if self.blob_dir is None:
            self.blob_dir = self.instance_path / "blobs"
        self.notice_signing_password = self.notice_signing_password or None
        if self.notice_signing_p12 is not None and self.notice_ca_cert is None:
            # Without it the portal would verify the ministry's notices against nothing (or a demo CA).
            raise ConfigError("PORTAL_NOTICE_CA_CERT must name the CA certificate of PORTAL_NOTICE_SIGNING_P12")
        parts = urlsplit(self.base_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
            raise ConfigError(f"PORTAL_BASE_URL must be the portal's public http(s) address, not {self.base_url!r}")
        if self.show_mail_links and self.env == "production":
            raise ConfigError("PORTAL_SHOW_MAIL_LINKS is for development: with PORTAL_ENV=production the outbox "
                              "never shows invitation links (set PORTAL_ENV=development to use it)")
        if self.blob_store not in {"directory", "database"}:
            raise ConfigError("PORTAL_BLOB_STORE must be directory or database")
        self.log_level = self.log_level.strip().upper()
        if self.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError("PORTAL_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        self.metrics_token = self.metrics_token or None  # set but empty: unset
        self.clamd_socket = self.clamd_socket or None
        if self.metrics_token is not None and len(self.metrics_token) < 32:
            raise ConfigError("PORTAL_METRICS_TOKEN must be at least 32 characters (e.g. "
                              "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
        if not 1 <= self.rfi_default_days <= 200:
            # A request's due date must fall within a year (reports.services.transition).
            raise ConfigError("PORTAL_RFI_DEFAULT_DAYS must be from 1 to 200 business days")
        self._resolve_oidc()
        if self.secret_key is None:
            secret_file = self.instance_path / "secret_key"
            if secret_file.exists():
                self.secret_key = secret_file.read_text().strip() or None
        if self.secret_key is not None and len(self.secret_key) < 32:
            raise ConfigError("PORTAL_SECRET_KEY must be at least 32 characters")
        for name in ("session_idle_minutes", "session_absolute_hours", "argon2_memory_kib",
                     "argon2_iterations", "argon2_lanes", "login_free_failures", "login_delay_seconds",
                     "login_max_delay_minutes", "login_max_failures_account", "login_account_window_hours",
                     "login_max_failures_address", "login_window_minutes", "login_known_device_days",
                     "max_form_bytes", "max_upload_bytes", "key_lease_hours", "clamd_timeout_seconds",
                     "api_rate_per_minute"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"PORTAL_{name.upper()} must be positive")

    def _resolve_oidc(self) -> None:
        parts = [self.oidc_issuer, self.oidc_client_id, self.oidc_client_secret]
        if any(parts) and not all(parts):
            raise ConfigError("GビズID sign-in needs PORTAL_OIDC_ISSUER, PORTAL_OIDC_CLIENT_ID and "
                              "PORTAL_OIDC_CLIENT_SECRET together (unset all three to turn it off)")
        if self.oidc_issuer:
            issuer = urlsplit(self.oidc_issuer)
            loopback = issuer.hostname in {"127.0.0.1", "localhost", "::1"}
            if issuer.scheme != "https" and not (issuer.scheme == "http" and loopback):
                raise ConfigError(f"PORTAL_OIDC_ISSUER must be an https URL, not {self.oidc_issuer!r}")
        for name in ("oidc_prime_role", "oidc_member_role", "oidc_entry_role"):
            # Company roles only: government roles keep TOTP and never sign in through GビズID.
            if getattr(self, name) not in {"", "filer", "org_admin"}:
                raise ConfigError(f"PORTAL_{name.upper()} must be filer, org_admin or empty (refused)")
        if "openid" not in self.oidc_scopes.split():
            raise ConfigError("PORTAL_OIDC_SCOPES must include openid")
        if not 0 <= self.oidc_leeway_seconds <= 300:
            raise ConfigError("PORTAL_OIDC_LEEWAY_SECONDS must be from 0 to 300")
        if self.oidc_timeout_seconds <= 0:
            raise ConfigError("PORTAL_OIDC_TIMEOUT_SECONDS must be positive")

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id and self.oidc_client_secret)

    def require_secret(self) -> str:
        if not self.secret_key:
            raise ConfigError(
                "No secret key: set PORTAL_SECRET_KEY or run `portal init` to create "
                f"{self.instance_path / 'secret_key'}. The portal does not start without one."
            )
        return self.secret_key

    @property
    def notice_demo_signing(self) -> bool:
        """Whether notices are signed with the demo set under instance/ (no key configured)."""
        return self.notice_signing_p12 is None

    @property
    def is_postgres(self) -> bool:
        return str(self.database_url).startswith("postgresql")

    @property
    def mail_links_shown(self) -> bool:
        """Whether the outbox shows invitation links in full: the switch, and never in production."""
        return self.show_mail_links and self.env != "production"

    @property
    def smtp_configured(self) -> bool:
        return bool(self.smtp_host)


def _convert(type_name: object, raw: str) -> object:
    t = str(type_name)
    if "bool" in t:
        return _bool(raw)
    if "int" in t:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"not an integer: {raw!r}") from None
    if "Path" in t:
        return Path(raw)
    return raw


def setting_names() -> list[str]:
    """All environment variable names, for the README test."""
    return [Settings.ENV_PREFIX + f.name.upper() for f in fields(Settings)]
