"""An example Conveyor plugin: the `greet` job type."""
