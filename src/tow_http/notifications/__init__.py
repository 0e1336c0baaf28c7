"""Notifications, watching, mentions and notification preferences over HTTP and in the browser (issue 19)."""
