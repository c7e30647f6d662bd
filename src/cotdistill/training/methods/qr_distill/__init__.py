"""QR-Distill (METHODS.md §1): the method on the shared loop, its router and its peer teaching."""
