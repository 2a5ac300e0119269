"""The engine: one llama.cpp model and context driven by one scheduler thread."""
