"""Teachers: reasoning styles (prompt templates as data files) and the backends that write paths."""
