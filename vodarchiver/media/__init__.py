"""Media: yt-dlp and ffmpeg, as pure argv builders and parsers, and the downloader running them."""
