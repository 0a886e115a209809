"""The analysis: a pure batch-in/batch-out core per modality and thin Flink adapters around it."""
