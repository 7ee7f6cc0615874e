"""Constrained decoding: the grammar IR, the per-request scope grammar, the statement-by-statement
writer and the operator vocabulary; the token-level decoder that runs these grammars on llama.cpp
is `treadle.runtime.models.llama_constrained`."""
