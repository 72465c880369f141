"""YouTube: Google OAuth credentials, tokens at rest, the Data API and the resumable upload."""
