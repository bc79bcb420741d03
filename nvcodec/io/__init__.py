"""Media I/O: files <-> arrays (images through Pillow)."""
