"""Watch: every transfer metered, hard limits held before a query runs, detectors on top,
automatic suspension, and alerts in the formats security teams already ingest."""
