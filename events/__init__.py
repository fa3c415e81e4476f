"""Outbound events: a transactional outbox in the warehouse, delivered to subscribers.

- ``events.outbox``: ``record_event`` / ``record_events`` add events inside the caller's
  transaction; ``EVENT_TYPES`` lists them; ``OutboxEvent.envelope`` is the delivered body.
- ``events.watch``: watch rules (declared on entity specs) that turn warehouse changes into
  events, announcing each change once.
"""
