"""Domain core of the school expense approval engine (no Flask in here)."""
