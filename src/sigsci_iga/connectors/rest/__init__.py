"""A native engine for Saviynt-style REST connection packages."""
