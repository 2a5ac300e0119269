"""The OpenAI-compatible HTTP API (FastAPI): thin routes over the serving layer."""
