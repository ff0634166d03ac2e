"""Webhooks: the farm tells people when recipes fail, recover and get published.

:mod:`.outbox` turns the queue's events into grouped messages inside the
farm's state (a transactional outbox), :mod:`.deliver` sends them from the
controller's process with retries, :mod:`.messages` renders and signs them.
"""

from __future__ import annotations

from wheelfarm.farm.notify.outbox import delivery_counts

__all__ = ["delivery_counts"]
