"""Notifications: the events (events.py), their delivery (sender.py), the periodic conditions
(checker.py) and `vodarchiver notify test`. The outbox itself is migration 0008's table."""
