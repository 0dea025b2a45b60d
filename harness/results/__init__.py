"""The record of a run: the catalogue of estimates, typed and versioned records, the store that
writes them and the readers of stored runs."""
