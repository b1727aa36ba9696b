"""inference wing."""
