"""People in the loop: the arena between policies (and, with the labelling app, the store of human labels)."""
