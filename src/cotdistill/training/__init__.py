"""Training: students, collation, the shared Accelerate loop and the methods that run on it."""
