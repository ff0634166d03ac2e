"""GnuPG signatures through python-gnupg: the publisher's key and a verifier's public key.

The publisher signs with a key from its keyring (``GNUPGHOME`` as usual),
chosen by ``--sign-key``, ``WHEELFARM_SIGN_KEY`` or the farm config; a
passphrase, if the key has one, comes from ``WHEELFARM_SIGN_PASSPHRASE``.
A verifier trusts exactly the keys in one public key file, imported into a
throwaway keyring, so nothing in the user's own keyring can vouch for an index.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from wheelfarm.errors import ConfigError, SigningError, needs_extra

if TYPE_CHECKING:
    import gnupg  # type: ignore[import-untyped]  # python-gnupg ships no type hints

KEY_ENV = "WHEELFARM_SIGN_KEY"
PASSPHRASE_ENV = "WHEELFARM_SIGN_PASSPHRASE"
# During a key rotation only: full fingerprints (comma-separated) of the farm's previous
# key, whose generations the publisher may still build on. Never "any key in the keyring".
PREVIOUS_ENV = "WHEELFARM_PREVIOUS_SIGN_KEYS"
# SHA-256: as strong as apt asks for, and several times faster than SHA-512 on CPUs with
# SHA extensions, which matters for a SHA256SUMS of tens of megabytes on every publish.
_DIGEST = ["--digest-algo", "SHA256"]

# python-gnupg logs command lines (with the key id) and output chunks at DEBUG:
# keep the signing key out of the farm's logs whatever the root logger's level.
logging.getLogger("gnupg").setLevel(logging.WARNING)


def resolve_key(option: str | None, configured: str | None) -> str:
    key = option or os.environ.get(KEY_ENV) or configured
    if not key:
        raise ConfigError("no signing key: pass --sign-key KEYID, set WHEELFARM_SIGN_KEY, "
                          "or set sign-key in the [publish] table of wheelfarm.toml")
    return key


def _gpg(home: str | None, *options: str) -> gnupg.GPG:
    with needs_extra("sign", "signing or verifying an index"):
        import gnupg
    try:
        gpg = gnupg.GPG(gnupghome=home, options=["--no-auto-key-retrieve", *options])
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"gpg is not usable ({exc}); install GnuPG (apt-get install gnupg)"
                          ) from None
    gpg.encoding = "utf-8"
    gpg.buffer_size = 1 << 20  # the default 16 KiB makes hashing a large SHA256SUMS slow
    return gpg


def _why(result: Any) -> str:
    status = getattr(result, "status", None) or "failed"
    tail = [line for line in (getattr(result, "stderr", "") or "").splitlines()
            if line.startswith("gpg: ")]
    return f"{status} ({tail[-1][5:]})" if tail else str(status)


class Signer:
    """Detached and clear signatures with the publisher's secret key."""

    def __init__(self, key_id: str, *, gnupghome: str | None = None,
                 passphrase: str | None = None) -> None:
        self._gpg = _gpg(gnupghome)
        found = self._gpg.list_keys(secret=True, keys=[key_id])
        home = gnupghome or os.environ.get("GNUPGHOME") or "~/.gnupg"
        if len(found) != 1:
            # The id itself stays out of the message: it was given on purpose and may be logged.
            what = "no secret key" if not found else "more than one secret key"
            raise ConfigError(f"the signing key matches {what} in the keyring at {home}")
        self.fingerprint: str = found[0]["fingerprint"]
        self._passphrase = passphrase if passphrase is not None \
            else os.environ.get(PASSPHRASE_ENV)

    def detach(self, data: bytes) -> bytes:
        """An ASCII-armored detached signature of ``data`` (a ``.asc`` file)."""
        result = self._gpg.sign(data, keyid=self.fingerprint, detach=True,
                                passphrase=self._passphrase, extra_args=_DIGEST)
        if not result.data:
            raise SigningError(f"gpg could not sign: {_why(result)}")
        return bytes(result.data)

    def clearsign(self, text: str) -> bytes:
        result = self._gpg.sign(text, keyid=self.fingerprint, clearsign=True,
                                passphrase=self._passphrase, extra_args=_DIGEST)
        if not result.data:
            raise SigningError(f"gpg could not sign: {_why(result)}")
        return bytes(result.data)

    def open_own(self, data: bytes, what: str) -> str:
        """The signed text of a manifest this farm published earlier.

        Only this publisher's own key is accepted, never any other key in its
        keyring: a store writer who holds some other key must not be able to
        plant the base of the next generation.
        """
        previous = {f.strip().upper() for f in os.environ.get(PREVIOUS_ENV, "").split(",")
                    if f.strip()}
        return _open_signed_by(self._gpg, {self.fingerprint, *previous}, data, what)

    def check_detached(self, data: bytes, signature: bytes) -> bool:
        """True if ``signature`` is a valid detached signature of ``data`` by this key."""
        result = _verify_detached(self._gpg, data, signature)
        return bool(result.valid) and result.pubkey_fingerprint == self.fingerprint


def _verify_detached(gpg: gnupg.GPG, data: bytes, signature: bytes,
                     directory: str | None = None) -> Any:
    """gpg's verdict on a detached ``signature`` of ``data`` (gpg reads it from a file)."""
    fd, sig_path = tempfile.mkstemp(dir=directory, suffix=".asc")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(signature)
        return gpg.verify_data(sig_path, data)
    finally:
        os.unlink(sig_path)


def _open_signed_by(gpg: gnupg.GPG, fingerprints: set[str], data: bytes, what: str) -> str:
    """The text of ``data`` if clearsigned by one of ``fingerprints`` alone; else SigningError.

    Primary-key fingerprints, as gpg reports them: a key id or user id is never enough.
    """
    result = gpg.decrypt(data)
    signatures = len(getattr(result, "sig_info", {}) or {})
    if not result.valid:
        raise SigningError(
            f"{what}: the signature does not verify with the keyring ({_why(result)}); the "
            f"store may have been altered, or it was signed by a key whose public half is "
            f"not in the keyring")
    if result.pubkey_fingerprint not in fingerprints or signatures > 1:
        raise SigningError(
            f"{what}: signed by key {result.pubkey_fingerprint or result.key_id}, not by "
            f"this farm's key {' or '.join(sorted(fingerprints))}; the store was altered")
    return bytes(result.data).decode("utf-8")


class FarmKey:
    """The farm's configured key, from the local keyring (its public half suffices):
    opens manifests only if this key signed them (the store cache's trust)."""

    def __init__(self, key_id: str, *, gnupghome: str | None = None) -> None:
        self._gpg = _gpg(gnupghome)
        found = self._gpg.list_keys(keys=[key_id])
        home = gnupghome or os.environ.get("GNUPGHOME") or "~/.gnupg"
        if len(found) != 1:
            what = "no key" if not found else "more than one key"
            raise ConfigError(f"the farm's signing key matches {what} in the keyring at {home}")
        self.fingerprint: str = found[0]["fingerprint"]

    def open(self, data: bytes, what: str) -> str:
        previous = {f.strip().upper() for f in os.environ.get(PREVIOUS_ENV, "").split(",")
                    if f.strip()}
        return _open_signed_by(self._gpg, {self.fingerprint, *previous}, data, what)


class Keyring:
    """The keys of one public key file, in a throwaway keyring; use as a context manager."""

    def __init__(self, key_file: Path) -> None:
        try:
            key_data = key_file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{key_file}: {exc.strerror or exc}") from None
        # Short path: gpg puts sockets in the home, and those have a length limit.
        self._home = tempfile.mkdtemp(prefix="wf-verify-")
        try:
            # Verifying needs no secret key, so no agent: nothing is left running afterwards.
            self._gpg = _gpg(self._home, "--trust-model", "always", "--no-autostart")
            imported = self._gpg.import_keys(key_data)
            self.fingerprints = frozenset(imported.fingerprints)
            if not self.fingerprints:
                raise ConfigError(f"{key_file}: no OpenPGP public key in it")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        shutil.rmtree(self._home, ignore_errors=True)

    def __enter__(self) -> Keyring:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _problem(self, result: Any) -> str | None:
        if result.valid and result.pubkey_fingerprint in self.fingerprints:
            return None
        status = str(result.status or "")
        if result.valid or status == "no public key":
            return f"signed by key {result.key_id or result.fingerprint}, not by the given key"
        if status in ("no data was provided", "") or "no signature" in status:
            return "not signed (no OpenPGP signature found)"
        return _why(result)

    def open_signed(self, data: bytes) -> tuple[str | None, str | None]:
        """(signed text, None), or (None, why it is not validly signed by the given key).

        The text is what gpg says was signed, never the bytes around it.
        """
        result = self._gpg.decrypt(data)
        problem = self._problem(result)
        if problem is None and len(getattr(result, "sig_info", {}) or {}) > 1:
            problem = "more than one signature"
        return (None, problem) if problem else (bytes(result.data).decode("utf-8"), None)

    def check_detached(self, data: bytes, signature: bytes) -> str | None:
        """None if ``signature`` is a valid detached signature of ``data`` by the given key."""
        return self._problem(_verify_detached(self._gpg, data, signature, self._home))
