"""Energy that users can bill by: lifetime counters that never fall or jump,
day and 7-day energy cut at the gateway's local midnight, and events for
what was corrected. The one stateful stage between normalize/ and the sink.

- ``counter.py``  pure state machine of one lifetime counter series
- ``daily.py``    pure: midnight values of a corrected counter, today / 7 days
- ``localday.py`` the gateway's time zone and local dates
- ``store.py``    one gateway's state file in the state directory
- ``stage.py``    applies them to a job's points, makes ``enphase_event`` points
"""
