"""Runs: where they live and who runs them.

- store: one folder per run and an index for listing
- runner and worker: a durable queue, one worker process per device, re-attached after a restart
- jobs: long page work (exports, range tests) beside the server
- eventlog: reading a run's events as they arrive
"""
