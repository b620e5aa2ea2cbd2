"""Feature sets: the 68 landmarks (and, for appearance sets, the grey image) -> feature vectors. Imports only the
core."""
