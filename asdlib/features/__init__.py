"""Features: the log-mel front end (reference torchaudio path and fast CPU path) and the memory-mapped feature cache."""
