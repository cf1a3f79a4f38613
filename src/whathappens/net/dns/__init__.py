"""DNS: the system's view, the recursive resolver's view and the iterative walk from the root."""
