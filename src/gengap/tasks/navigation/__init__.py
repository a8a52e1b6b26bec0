"""V-IRL-style navigation (route following on a rail of decision points)."""

from gengap.tasks.navigation.task import NavigationConfig, NavigationTask

__all__ = ["NavigationConfig", "NavigationTask"]
