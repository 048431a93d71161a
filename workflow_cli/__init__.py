"""workflow_cli: a local, durable workflow engine driven from the terminal."""

__version__ = "0.1.0"
