"""Caption backends behind one interface (``CaptionBackend``): vLLM over HTTP, and offline context text."""
