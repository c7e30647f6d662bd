"""COMPACT (METHODS.md §2): the method on the shared loop, its per-question teacher weights and their plot."""
