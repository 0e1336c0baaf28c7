"""The inbox and the Today page (issue 14 item 3): its API route, pages and shapes."""
