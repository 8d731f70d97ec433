"""The actor shell: provider actors, breaker actors and the registry supervisor.

Everything that owns time (timers, health checks, back-off) or a lifecycle (start, run,
close, restart) lives here; the pure core (breaker, selection, restart policy) does not.
"""
