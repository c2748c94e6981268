"""Records of the audit chain and of deletions kept outside the database, signed, create-only."""
