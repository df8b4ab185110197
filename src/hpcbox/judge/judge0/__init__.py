"""The Judge0 wire format: the mapping of its fields and the views the API serves."""
