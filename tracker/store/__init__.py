"""The store: everything that speaks SQL to PostgreSQL, and nothing that speaks HTTP."""
