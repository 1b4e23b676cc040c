"""The stream engine: batch, offsets, flush, commit, dead letters, and the sink contract."""
