"""Planning: protocols, timing, templates, preview; pure, no I/O."""
