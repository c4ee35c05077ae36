"""Scheduled work: cron ticks, the planner (plan state to outbox rows), the dispatcher."""
