"""Live updates over server-sent events (issue 19 item 3): the stream route and its protocol."""
