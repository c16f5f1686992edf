"""parsec-server: a Parsec v3 (API 5.x) server."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("parsec-server")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
