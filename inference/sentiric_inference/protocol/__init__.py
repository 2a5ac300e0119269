"""OpenAI wire models and their translation to serving requests (no web framework, no engine)."""
