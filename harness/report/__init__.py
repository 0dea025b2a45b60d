"""Machine fingerprint, result store, plots, HTML/Markdown rendering, comparison."""
