"""`wsproxy rerun` and `wsproxy diff`: a recording's clients against a live server, and what changed."""
