"""Day-2 operations: audit of the invariants, status and inspect views (pure logic + collectors)."""
