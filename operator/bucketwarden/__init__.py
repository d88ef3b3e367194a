"""bucketwarden: keep S3 bucket policies IP-restricted without breaking AWS Backup."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bucketwarden")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
