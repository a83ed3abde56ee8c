"""LeakGuard privacy suite placeholder."""
