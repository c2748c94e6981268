"""``make bench``: ingest, encryption and concurrency measured against same-run baselines."""
