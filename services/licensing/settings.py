"""The licensing service's settings (`HANPORT_LICENSING_*`, the admin token), on top of
`CommonSettings` (which holds `HANPORT_USE`, the trusted public keys and `HANPORT_LICENSE_DIR`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr

from shared.settings import CommonSettings


class LicensingSettings(CommonSettings):
    licensing_host: str = Field("0.0.0.0", description="Address the licensing API listens on.")
    licensing_port: int = Field(
        8090, ge=1, le=65535, description="Port of the licensing API and its /metrics."
    )
    admin_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("HANPORT_ADMIN_TOKEN", "HANPORT_LICENSING_ADMIN_TOKEN"),
        description="Bearer token that PUT/DELETE /license need (also read as "
        "HANPORT_LICENSING_ADMIN_TOKEN). Never logged. Unset: licenses are installed only "
        "as files in HANPORT_LICENSE_DIR.",
    )
    admin_token_file: Path | None = Field(
        None,
        validation_alias=AliasChoices(
            "HANPORT_ADMIN_TOKEN_FILE", "HANPORT_LICENSING_ADMIN_TOKEN_FILE"
        ),
        description="File holding the admin token (a Docker secret); wins over "
        "HANPORT_ADMIN_TOKEN (also read as HANPORT_LICENSING_ADMIN_TOKEN_FILE).",
    )
    license_max_bytes: int = Field(
        16384, ge=512, le=16384, description="Largest license upload accepted, in bytes."
    )

    def admin_secret(self) -> str | None:
        """The admin token from the file or the variable; None (or empty): installs disabled."""
        if self.admin_token_file is not None:
            token = self.admin_token_file.read_text().strip()
        elif self.admin_token is not None:
            token = self.admin_token.get_secret_value().strip()
        else:
            return None
        return token or None
