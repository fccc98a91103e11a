"""Local stack on the embedded default: the Tansu broker, SQLite files and the three services as processes."""
