"""Helpers for tests that read samplers' batches (data.bundle's mapping)."""


def windows_and_groups(batch: dict):
    """(windows, group ids) of a window sampler's batch."""
    return batch["input_ids"], batch["group_ids"]
