"""The matcher's event stream, in one folder.

publisher.py  the matcher's end: each loop turn's EventBatch to the event log, then the PUB
eventlog.py   the event log's files: the writer (matcher thread) and the reader (replay thread)
replay.py     the replay service: old batches from the event log, on request
consumer.py   EventStream: a consumer's gap-free view (live batches, holes filled by replay)
"""
