"""Group captioning: prompt templates, caption backends (vLLM over HTTP, offline context), evaluation."""
