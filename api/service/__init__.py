"""Node services: the work behind the routes, which stay thin."""
