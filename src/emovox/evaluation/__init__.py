"""evaluation wing."""
