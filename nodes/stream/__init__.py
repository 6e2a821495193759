"""The matcher's event stream: the event log, the replay service and the gap-filling consumer."""
