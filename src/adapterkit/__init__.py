"""adapterkit: parameter-efficient fine-tuning with adapters, bundles with heads,
and one frozen base serving many adapters."""

__version__ = "0.1.0"
