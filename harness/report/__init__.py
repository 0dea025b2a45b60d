"""What a reader sees of a run: the report (HTML and Markdown), plots, the headline, the fleet and
history pages, progress lines. It reads results and never writes them."""
