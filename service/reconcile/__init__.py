"""The reconcile stage: ask the provider about tasks whose news is missing."""
