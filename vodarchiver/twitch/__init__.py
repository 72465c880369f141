"""Twitch: the Helix API client and its app token (chat comes with a later issue)."""
