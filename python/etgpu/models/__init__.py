"""Model definitions and export recipes bundled with etgpu (the demo transformer, later real LLMs)."""
