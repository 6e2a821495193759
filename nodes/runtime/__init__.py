"""What every node shares: config, the node lifecycle, metrics, the hot-path socket calls, fsync policy, the audit PUSH."""
