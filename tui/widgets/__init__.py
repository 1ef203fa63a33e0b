"""Reusable console widgets (floor 9): the lazy post table, the image preview, the post detail, the status bar."""
