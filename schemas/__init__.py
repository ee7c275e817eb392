"""JSON Schemas for every document podkit reads or writes; loaded by libaci.schema."""
