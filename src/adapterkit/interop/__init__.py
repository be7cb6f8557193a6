"""Other tools' formats: PEFT adapter folders out of and into adapterkit bundles.

``peft_layout`` says how names and shapes correspond (one home for both directions);
``peft_export`` writes a PEFT folder from a bundle, ``peft_import`` a bundle from a
PEFT folder.
"""
