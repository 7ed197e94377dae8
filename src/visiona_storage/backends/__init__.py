"""The backends behind `Store`: memory, localfs, s3."""
