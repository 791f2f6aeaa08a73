"""Tables and figures: pure functions from tidy metric files to artifacts."""
