"""Real VLM embeddings: model registry and encoders, dataset readers, resumable extraction."""
