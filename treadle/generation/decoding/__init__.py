"""Constrained decoding: the grammar IR, the per-request scope grammar, the statement-by-statement
writer, the operator vocabulary, and the token-level decoder over llama.cpp."""
