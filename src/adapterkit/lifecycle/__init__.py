"""Bundles made from other bundles.

``merge`` holds the arithmetic of merging adapters (weighted averages; LoRA deltas combined
by task arithmetic, TIES or DARE and factored back to a rank by SVD), pure functions on
tensors; ``merge_bundles`` reads and checks the parent bundles, refuses what cannot merge
before anything is written, and writes the merged bundle with its parents recorded.
"""
