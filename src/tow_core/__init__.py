"""TOW's domain: the rules of access, records and workflows. Imports only the standard library."""
