"""The apply stage: news becomes a state change (task, events, jobs) in one transaction."""
