"""One module per resource: health, point clouds, upload sessions, jobs, events, and the web console."""
