# Publishing and verification: real GnuPG (gpg, gpgconf, gpg-agent) for the signing and
# tamper tests. The S3 API is moto's server, which the tests start on 127.0.0.1 from the
# venv; sha256sum comes with coreutils.
apt_install gnupg gpg-agent coreutils
