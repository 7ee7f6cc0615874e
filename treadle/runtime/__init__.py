"""The runtime: the Graph IR it executes, the scheduler, models, sandbox, tracing, cache, CLI.

Importing this package stays cheap: heavy parts (llama_cpp, docker, httpx) load on first use.
"""
