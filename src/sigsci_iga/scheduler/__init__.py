"""The job scheduler: runs the repository's schedules through the application layer."""

from sigsci_iga.scheduler.engine import Scheduler, SchedulerOptions

__all__ = ["Scheduler", "SchedulerOptions"]
