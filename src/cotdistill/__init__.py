"""cotdistill: distil many teachers' reasoning paths into small student models."""

__version__ = "0.1.0"
