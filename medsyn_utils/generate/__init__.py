"""Note generation: model specs, backends, the resumable store, a local OpenAI-compatible server."""
