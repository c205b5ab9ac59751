"""Records and URL rules shared by tasks/ and warehouse/ (neither imports the other)."""
