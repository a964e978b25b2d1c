"""One module per peer queue: its noop task, how to enqueue and how to start its worker."""
