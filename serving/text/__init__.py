"""Text processing shared by training, scoring and serving: ``normalize`` (numbers read out,
punctuation removed) and ``desensitize`` (personal data masked into typed placeholders)."""
