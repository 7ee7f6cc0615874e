"""treadle: a workflow language for LLM agents, its compiler, and a sandboxed runtime."""

__version__ = "0.1.0"
