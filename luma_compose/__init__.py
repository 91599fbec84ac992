"""luma-compose: route many Docker Compose projects behind one reverse proxy."""

__version__ = "0.1.0"
