"""Provisioning: durable tasks that change targets exactly once, with a journal of every call."""
