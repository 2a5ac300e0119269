"""sentiric-llm operator: reconciles LLMProfile resources into inference Deployments."""
